"""The engine's parts: live state, sessions, the alert desk and the command table.

``console.services.engine`` is the process (its ``main()`` and loop); the
rules it applies live in ``models`` (``models.alerts``, ``models.accounts``,
``models.tracking``) and the store's side in ``db``.
"""
