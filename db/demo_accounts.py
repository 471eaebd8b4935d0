"""The demo's accounts: one per role, with random passwords kept in a file.

Why: the demo must be usable at once (its window signs in by itself) yet
never ship a password everybody knows, since a demo store is easily turned
into a pilot's. So each installation draws its own passwords on first start
and keeps them in ``<data-dir>/demo-accounts.txt``, readable by its owner only.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from db.accounts import add_user
from db.tables import User

FILE_NAME = "demo-accounts.txt"
# user -> roles; supervisor1 works the queue too, as supervisors do in the pilot.
DEMO_USERS: dict[str, list[str]] = {
    "operator1": ["operator"],
    "supervisor1": ["supervisor", "operator"],
    "trainer1": ["trainer"],
    "auditor1": ["auditor"],
    "admin1": ["admin"],
}


def accounts_file(data_dir: Path) -> Path:
    return Path(data_dir) / FILE_NAME


def ensure_demo_accounts(session: Session, path: Path) -> dict[str, str] | None:
    """Create the demo accounts if none of them exists yet.

    Returns user -> password when they were created now (the caller shows
    them once), None when any of them existed already: an installation whose
    accounts were set up (or changed) is never given new passwords behind
    its back. The session is committed only after the file is written, so a
    failed write leaves neither accounts nobody can sign in to nor a file
    naming accounts that do not exist.
    """
    if session.scalar(select(User.id).where(User.name.in_(DEMO_USERS)).limit(1)) is not None:
        return None
    passwords = {name: secrets.token_urlsafe(12) for name in DEMO_USERS}
    for name, roles in DEMO_USERS.items():
        add_user(session, name, roles, passwords[name])
    session.flush()
    _write_private(path, passwords)
    session.commit()
    return passwords


def _write_private(path: Path, passwords: dict[str, str]) -> None:
    """Write the file owner-only from its first byte: created with mode 0600
    rather than chmod-ed after, so there is no moment others can read it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = "".join(f"{name}\t{passwords[name]}\t{','.join(DEMO_USERS[name])}\n"
                    for name in DEMO_USERS)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        os.fchmod(f.fileno(), 0o600)  # an older file kept its mode through O_CREAT
        f.write(lines)


def read_demo_accounts(path: Path) -> dict[str, str]:
    """user -> password from the file ``ensure_demo_accounts`` wrote."""
    out: dict[str, str] = {}
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        parts = line.split("\t")
        if len(parts) >= 2 and parts[0]:
            out[parts[0]] = parts[1]
    return out
