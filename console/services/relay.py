"""The media relay: cameras' RTSP in, MPEG-TS over HTTP out, ``cam.status``
on the bus, pre-alarm clips into the evidence store.

Why a process of its own: Debian's libvlc cannot open ``rtsp://`` (no
live555), and a camera must see one session however many consoles watch
it. HTTP (video and the control API, see ``console.media.http_ts``) listens
on ``relay_host:relay_port``; clips go to ``<data_dir>/evidence/``, up to
``evidence_budget_mb`` (then new clips are refused and the heartbeat's
``evidence_full`` turns every console DEGRADED; kept clips stay). Every
request needs a token signed with the installation's media secret
(``console.media.tokens``) when ``bus_security`` is on; off, the relay is
open to anyone who can reach the port (only to measure what security
costs).

Threads: one puller per pulled camera, one per HTTP connection, one that
writes Evidence rows, and this one, which alone owns the bus publisher.
"""

from __future__ import annotations

import sys
import threading
import time

import zmq

from console import keys
from console.bus import Publisher
from console.config import Config
from console.media.evidence import CameraBook, save_evidence
from console.media.http_ts import RelayServer
from console.media.hub import Relay, RelaySettings
from console.security import Security
from console.services.runtime import start
from db.store import open_store
from models.messages import CamStatus

TICK_S = 0.2


def settings_from(cfg: Config) -> RelaySettings:
    """Relay settings from the installation's config."""
    return RelaySettings(
        prealarm_s=cfg.relay_prealarm_s,
        debounce_s=cfg.relay_debounce_s,
        idle_s=cfg.relay_idle_s,
        evidence_budget_bytes=int(cfg.evidence_budget_mb * 2**20),
    )


def media_secret(cfg: Config) -> bytes | None:
    """The secret the relay checks tokens with: the one the engine signs
    them with (``<data_dir>/keys``), read once at start; None when
    security is off. A missing secret with security on stops the start
    (``keys.MissingKey``): a relay must never fall back to open."""
    if cfg.bus_security != "curve":
        return None
    return keys.media_secret(cfg.data_dir)


class RelayService:
    """The relay wired to a config: store, HTTP server, bus. ``run`` is the
    owner loop; tests run it in a thread with their own settings."""

    def __init__(self, cfg: Config, settings: RelaySettings | None = None) -> None:
        cfg.ensure_dirs()
        self.cfg = cfg
        _, self.sessions = open_store(cfg.db_url)
        self.relay = Relay(
            settings or settings_from(cfg), CameraBook(self.sessions).url,
            cfg.data_dir / "evidence",
            save=lambda **kw: save_evidence(self.sessions, **kw),
        )
        # Bind now, so a busy port fails the start and callers can connect
        # as soon as the constructor returns.
        self.http = RelayServer((cfg.relay_host, cfg.relay_port), self.relay,
                                secret=media_secret(cfg))
        self._http_thread = threading.Thread(target=self.http.serve_forever,
                                             kwargs={"poll_interval": 0.2},
                                             name="relay-http", daemon=True)

    def run(self, stop: threading.Event) -> None:
        ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        pub = Publisher(ctx, self.cfg.bus_pub, origin="relay", source=self.cfg.bus_source,
                        security=Security.of(self.cfg, "relay"))
        self._http_thread.start()
        next_beat = 0.0
        try:
            while not stop.wait(TICK_S):
                for camera_id, state, detail in self.relay.tick():
                    pub.send(CamStatus(camera_id=camera_id, state=state,  # type: ignore[arg-type]
                                       detail=detail))
                if time.monotonic() >= next_beat:
                    pub.heartbeat({**self.relay.stats(),
                                   "revoked_sessions": float(len(self.http.revocations))})
                    next_beat = time.monotonic() + 1.0
        finally:
            self.http.shutdown()
            self.relay.close()
            self.http.server_close()
            pub.close()
            ctx.term()


def main(argv: list[str] | None = None) -> int:
    rt = start("relay", argv)
    service = RelayService(rt.config)
    rt.log.info("serving on http://%s:%d", rt.config.relay_host, rt.config.relay_port)
    if service.http.secret is None:
        rt.log.warning("bus_security is off: camera streams and control need no token")

    # Runtime.should_stop also notices a dead supervisor; poll it into the event.
    def watch_parent() -> None:
        while not rt.should_stop():
            time.sleep(0.5)
        rt.stop.set()

    threading.Thread(target=watch_parent, name="orphan-check", daemon=True).start()
    service.run(rt.stop)
    rt.log.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
