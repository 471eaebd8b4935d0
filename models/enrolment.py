"""What an enrolled child can carry and how they can travel: the store
checks them on every write, the console offers only these."""

from __future__ import annotations

DEVICE_KINDS = ("watch", "phone", "tag")
# How a child travels: unusual movement compares speed with the profile's
# limit (config speed_limit_kmh).
PROFILES = ("walking", "bus")
