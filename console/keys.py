"""The installation's CURVE keys: who may be on the bus, and as whom.

Every process and every console has its own key pair under
``<data_dir>/keys``: ``NAME.key`` holds the public key (any process may
read it), ``NAME.key_secret`` the pair (mode 0600, in a 0700 folder). The
name says the role (``models.bus_rights``): ``console`` and
``console-<workstation>`` are consoles. A key is known when its public file
is in the folder; nothing else is trusted. To move a console to another
host, copy its pair and the public keys of ``bus`` and ``engine``.

The media relay's token secret lives here too (``media.secret``): the
engine signs camera tokens with it and the relay checks them.
"""

from __future__ import annotations

import fcntl
import os
import re
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import zmq
import zmq.auth

from models.bus_rights import SERVICE_KEYS, role_of_key

KEY_NAME = re.compile(r"[a-z][a-z0-9-]{1,39}")
MEDIA_SECRET = "media.secret"


class MissingKey(RuntimeError):
    """A key that should be there is not, or cannot be read: say which and
    how to make it (the command line prints it as an error)."""


@dataclass(frozen=True, slots=True)
class KeyPair:
    name: str
    public: bytes  # Z85, 40 bytes
    secret: bytes


def keys_dir(data_dir: Path) -> Path:
    return Path(data_dir) / "keys"


def _write_private(path: Path, data: bytes) -> None:
    """Create ``path`` readable by its owner only, from the first byte."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


@contextmanager
def _locked(data_dir: Path) -> Iterator[Path]:
    """The keys folder (made 0700), held against another process making keys
    in it at the same moment (a demo starting while its console or ``tap``
    starts): the second one finds the first one's keys."""
    folder = keys_dir(data_dir)
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o700)
    with open(folder / ".lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield folder
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def create(data_dir: Path, name: str) -> bool:
    """Make the pair ``name`` unless it exists; True when it was made."""
    if not KEY_NAME.fullmatch(name):
        raise ValueError(f"key name {name!r}: 2-40 lower-case letters, digits or '-', "
                         "starting with a letter")
    role_of_key(name)  # raises for a name that has no role
    with _locked(data_dir) as folder:
        return _create(folder, name)


def _create(folder: Path, name: str) -> bool:
    public_file, secret_file = folder / f"{name}.key", folder / f"{name}.key_secret"
    if secret_file.exists():
        return False
    public, secret = zmq.curve_keypair()
    body = f"curve\n    public-key = \"{public.decode()}\"\n"
    _write_private(secret_file, (body + f"    secret-key = \"{secret.decode()}\"\n").encode())
    tmp = public_file.with_suffix(".tmp")
    tmp.write_text(body)
    tmp.replace(public_file)
    return True


def init(data_dir: Path) -> list[str]:
    """Every service's pair, one console's, and the media secret; returns
    what was made (nothing on the second run: keys are never replaced)."""
    with _locked(data_dir) as folder:
        made = [name for name in (*SERVICE_KEYS, "console") if _create(folder, name)]
        secret_file = folder / MEDIA_SECRET
        if not secret_file.exists():
            _write_private(secret_file, secrets.token_bytes(32))
            made.append(MEDIA_SECRET)
    return made


def load(data_dir: Path, name: str) -> KeyPair:
    path = keys_dir(data_dir) / f"{name}.key_secret"
    if not path.exists():
        raise MissingKey(f"no key pair {name!r} under {path.parent}: the backend makes the "
                         f"keys on its first start (is the backend running with this data "
                         f"dir?), or run `childsafe keys init --data-dir {data_dir}`")
    public, secret = zmq.auth.load_certificate(path)
    if secret is None:
        raise MissingKey(f"{path} holds no secret key")
    return KeyPair(name, public, secret)


def known(data_dir: Path) -> dict[bytes, str]:
    """Public key (Z85) -> key name, for every ``*.key`` in the folder with
    a name that has a role; anything else there is ignored."""
    out: dict[bytes, str] = {}
    for path in sorted(keys_dir(data_dir).glob("*.key")):
        name = path.stem
        try:
            role_of_key(name)
            public, _ = zmq.auth.load_certificate(path)
        except (ValueError, OSError):
            continue
        out[public] = name
    return out


def media_secret(data_dir: Path) -> bytes:
    path = keys_dir(data_dir) / MEDIA_SECRET
    try:
        return path.read_bytes()
    except OSError as exc:
        raise MissingKey(f"no media secret at {path}: run `childsafe keys init`") from exc


def check_private(data_dir: Path) -> list[str]:
    """Secret files others could read: each is a sentence."""
    problems = []
    folder = keys_dir(data_dir)
    for path in [*sorted(folder.glob("*.key_secret")), folder / MEDIA_SECRET]:
        if path.exists() and path.stat().st_mode & 0o077:
            problems.append(f"{path} is readable by others (mode "
                            f"{path.stat().st_mode & 0o777:o}); chmod 600 it")
    return problems


def public(data_dir: Path, name: str) -> bytes:
    """The public key of ``name`` (a server a client must recognise)."""
    path = keys_dir(data_dir) / f"{name}.key"
    try:
        key, _ = zmq.auth.load_certificate(path)
    except (OSError, ValueError) as exc:
        raise MissingKey(f"no public key {name!r} at {path}: run "
                         f"`childsafe keys init --data-dir {data_dir}`") from exc
    return key
