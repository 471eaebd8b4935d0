"""Delivering guardians' notices: one adapter interface (``adapters``), a
real SMTP sender (``smtp``) and the demo's record file (``recording``).
The notifier process (``console.services.notifier``) drives them from the
outbox in the store (``db.outbox``)."""
