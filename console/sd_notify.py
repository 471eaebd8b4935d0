"""systemd's notify protocol, spoken directly (a datagram to $NOTIFY_SOCKET).

``childsafe serve`` under a ``Type=notify`` unit says READY=1 once every
service is started, then WATCHDOG=1 while its supervisor is alive, so
systemd restarts the whole control group when the supervisor hangs or dies
(``resources/systemd/childsafe.service``). Without $NOTIFY_SOCKET every
call is a no-op, so the same code runs from a terminal.
"""

from __future__ import annotations

import os
import socket


def notify(state: str) -> bool:
    """Send ``state`` (e.g. "READY=1"); True if there was a socket to send to."""
    path = os.environ.get("NOTIFY_SOCKET", "")
    if not path:
        return False
    address = "\0" + path[1:] if path.startswith("@") else path  # an abstract socket
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as s:
        s.connect(address)
        s.sendall(state.encode())
    return True


def watchdog_interval_s() -> float | None:
    """Half the watchdog timeout systemd set for us (how often to ping), or None."""
    usec = os.environ.get("WATCHDOG_USEC", "")
    pid = os.environ.get("WATCHDOG_PID", "")
    if not usec.isdigit() or (pid and pid != str(os.getpid())):
        return None
    return int(usec) / 2e6
