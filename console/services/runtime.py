"""What every backend process shares: argument parsing, logging to its own
file, one stop flag set by SIGTERM/SIGINT, and an orphan check so a process
whose supervisor died exits instead of lingering."""

from __future__ import annotations

import argparse
import gc
import logging
import os
import signal
import threading
from pathlib import Path

from console.config import Config


class Runtime:
    def __init__(self, name: str, config: Config) -> None:
        self.name = name
        self.config = config
        self.stop = threading.Event()
        self._parent = os.getppid()
        self.log = logging.getLogger(f"childsafe.{name}")

    def should_stop(self) -> bool:
        """True once asked to stop, or once orphaned (the parent changed)."""
        if not self.stop.is_set() and os.getppid() != self._parent:
            self.log.warning("supervisor gone; stopping")
            self.stop.set()
        return self.stop.is_set()


def settle_heap() -> None:
    """Take what a process loaded at start (modules, the registry, its
    state) out of the garbage collector's reach: collect once, then freeze
    the survivors. Why: a full collection walks every tracked object, and
    with a city's registry loaded that stopped the gateway's and the
    engine's loops for 70-200 ms under load, long enough to miss an SOS's
    latency budget. Call it once, when start-up loading is done. What it
    froze and the process later drops (a roster reloaded) is still freed
    by reference counting; only a reference cycle among it stays, once:
    everything made after start is collected as usual."""
    gc.collect()
    gc.freeze()


def setup_logging(name: str, log_dir: Path | None) -> None:
    handlers: list[logging.Handler] = [logging.StreamHandler()]
    if log_dir is not None:
        log_dir.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_dir / f"{name}.log", encoding="utf-8"))
    logging.basicConfig(
        level=logging.INFO,
        format=f"%(asctime)s {name}[%(process)d] %(levelname)s %(name)s: %(message)s",
        handlers=handlers,
        force=True,
    )


def start(name: str, argv: list[str] | None) -> Runtime:
    """Parse ``--config``, set up logging and signals, return the runtime."""
    parser = argparse.ArgumentParser(prog=f"childsafe-{name}")
    parser.add_argument("--config", type=Path, required=True)
    args = parser.parse_args(argv)
    config = Config.load(args.config)
    setup_logging(name, config.log_dir)
    rt = Runtime(name, config)

    def _stop(signum: int, _frame: object) -> None:
        rt.log.info("signal %d: stopping", signum)
        rt.stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    try:
        import ctypes

        # Name the process like Frigate does, so `ps` shows which is which.
        ctypes.CDLL(None).prctl(15, f"childsafe-{name}".encode()[:15], 0, 0, 0)
    except (OSError, AttributeError):
        pass
    rt.log.info("started (data dir %s)", config.data_dir)
    return rt
