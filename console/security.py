"""CURVE on every bus and command socket, failing closed.

A process's ``Security`` puts its own key pair on each socket it opens:
clients name the server they expect (``bus`` or ``engine``), servers take
the installation's keys through a ZAP authenticator (``Guard``) running in
their own context. Servers set ``ZAP_ENFORCE_DOMAIN`` and a ``zap_domain``:
without that, libzmq lets a CURVE client in when no authenticator answers;
with it, a server whose authenticator is gone admits no one.

The authenticator names each peer by its key (the ZAP User-Id), so the bus
proxy and the engine know who sent every message, whatever its body says.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import zmq
from zmq.auth.thread import ThreadAuthenticator
from zmq.utils import z85

from console import keys
from models.bus_rights import KeyRole, role_of_key

if TYPE_CHECKING:
    from console.config import Config

log = logging.getLogger(__name__)

RELOAD_S = 1.0  # an unknown key re-reads the folder at most this often


@dataclass(slots=True)
class Security:
    """One process's identity on the bus; ``enabled`` False is plain ZeroMQ
    (only to measure what CURVE costs)."""

    data_dir: Path
    name: str
    enabled: bool = True
    pair: keys.KeyPair | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.enabled and self.pair is None:
            if not keys.keys_dir(self.data_dir).exists():
                # a fresh installation, whichever of its commands runs first:
                # security is on from then (a workstation has copied keys)
                keys.init(self.data_dir)
            self.pair = keys.load(self.data_dir, self.name)

    @classmethod
    def of(cls, config: Config, name: str) -> Security:
        return cls(config.data_dir, name, config.bus_security == "curve")

    @classmethod
    def console(cls, config: Config) -> Security:
        """This workstation's identity (its console and command-line tools)."""
        return cls.of(config, config.console_key)

    def client(self, sock: zmq.Socket[bytes], server: str) -> None:
        """Before ``connect``: talk to ``server`` (a key name) as ourselves."""
        if not self.enabled:
            return
        assert self.pair is not None
        sock.curve_secretkey = self.pair.secret
        sock.curve_publickey = self.pair.public
        sock.curve_serverkey = keys.public(self.data_dir, server)

    def server(self, sock: zmq.Socket[bytes], domain: str) -> None:
        """Before ``bind``: admit only peers ``domain``'s guard accepts."""
        if not self.enabled:
            return
        assert self.pair is not None
        sock.curve_server = True
        sock.curve_secretkey = self.pair.secret
        sock.curve_publickey = self.pair.public
        sock.zap_domain = domain.encode()
        sock.setsockopt(zmq.ZAP_ENFORCE_DOMAIN, 1)

    def guard(self, ctx: zmq.Context[zmq.Socket[bytes]],
              domains: dict[str, frozenset[KeyRole]]) -> Guard | None:
        """Start the authenticator for ``ctx``'s server sockets (before they
        bind); None when security is off."""
        if not self.enabled:
            return None
        guard = Guard(ctx, self.data_dir, domains)
        guard.start()
        return guard


class Guard(ThreadAuthenticator):
    """Admits a CURVE key when its public file is in the keys folder and its
    role may use the domain; names the peer by its key's name."""

    def __init__(self, ctx: zmq.Context[zmq.Socket[bytes]], data_dir: Path,
                 domains: dict[str, frozenset[KeyRole]]) -> None:
        super().__init__(ctx, log=logging.getLogger("console.security.zap"))
        self.data_dir = data_dir
        self.domains = domains
        self._known = keys.known(data_dir)
        self._read_at = time.monotonic()
        self._lock = threading.Lock()
        self.admitted: Counter[str] = Counter()
        self.refused: Counter[str] = Counter()

    def start(self) -> None:
        super().start()
        for domain in self.domains:
            self.configure_curve_callback(domain, self)

    def _name(self, z85_key: bytes) -> str | None:
        with self._lock:
            name = self._known.get(z85_key)
            if name is None and time.monotonic() - self._read_at >= RELOAD_S:
                # a console key added while the system runs is admitted
                self._known = keys.known(self.data_dir)
                self._read_at = time.monotonic()
                name = self._known.get(z85_key)
            return name

    def callback(self, domain: str, z85_key: bytes) -> bool:
        """ZAP's question, from the authenticator's thread: may this key in?"""
        name = self._name(z85_key)
        if name is not None and role_of_key(name) in self.domains.get(domain, frozenset()):
            self.admitted[domain] += 1
            return True
        self.refused[domain] += 1
        log.warning("refused a %s connection to %s (%s)",
                    "known key's" if name else "unknown key's", domain,
                    name or z85_key.decode("ascii", "replace")[:12] + "…")
        return False

    def curve_user_id(self, client_public_key: bytes) -> str:
        return self._name(z85.encode(client_public_key)) or "?"

    def stats(self) -> dict[str, float]:
        """For the owner's heartbeat: connections admitted and refused."""
        return {"peers_admitted": float(sum(self.admitted.values())),
                "peers_refused": float(sum(self.refused.values()))}


def peer(frame: zmq.Frame) -> str:
    """The key name the authenticator gave the sender of ``frame`` ("" when
    the socket is not secured)."""
    try:
        return frame.get("User-Id") or ""
    except zmq.ZMQError:
        return ""
