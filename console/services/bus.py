"""The bus: an XSUB/XPUB proxy. Publishers connect to its input, subscribers
to its output; it holds no state, so restarting it costs subscribers a
sequence gap (and thus a resync), nothing more."""

from __future__ import annotations

import sys

import zmq

from console.bus import socket
from console.services.runtime import start


def main(argv: list[str] | None = None) -> int:
    rt = start("bus", argv)
    cfg = rt.config
    cfg.ensure_dirs()
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    xsub = socket(ctx, zmq.XSUB)
    xpub = socket(ctx, zmq.XPUB)
    xsub.bind(cfg.bus_pub)
    xpub.bind(cfg.bus_sub)
    poller = zmq.Poller()
    poller.register(xsub, zmq.POLLIN)
    poller.register(xpub, zmq.POLLIN)
    forwarded = 0
    # A polled loop rather than zmq.proxy(): it lets SIGTERM stop us cleanly.
    while not rt.should_stop():
        for sock, _ in poller.poll(200):
            if sock is xsub:
                while True:
                    try:
                        xpub.send_multipart(xsub.recv_multipart(zmq.NOBLOCK))
                        forwarded += 1
                    except zmq.Again:
                        break
            else:
                xsub.send_multipart(xpub.recv_multipart())
    rt.log.info("stopping after %d messages", forwarded)
    xsub.close(0)
    xpub.close(0)
    ctx.term()
    for p in cfg.ipc_paths()[:2]:
        p.unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
