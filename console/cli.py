"""``childsafe`` — the command line operators, tests and scripts rely on.

Every command takes ``--data-dir``: the store, the bus sockets and the logs
of one installation live under it.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from console.config import Config

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker

log = logging.getLogger("childsafe")


def _config(args: argparse.Namespace) -> Config:
    cfg = Config.load(
        getattr(args, "config", None),
        data_dir=args.data_dir,
        db_url=getattr(args, "db", None),
        children=getattr(args, "children", None),
    )
    cfg.ensure_dirs()
    return cfg


def _prepare_store(cfg: Config, demo: bool = False) -> str | None:
    """Migrate and seed the store; for ``demo``, also its accounts.

    Returns operator1's password when the demo's window can sign in by itself
    (the demo accounts and their file are there), else None.
    """
    from console.services.democams import stream_url
    from db.seed import seed_demo
    from db.seed_cameras import seed_cameras
    from db.seed_readers import seed_readers
    from db.store import open_store

    engine, sessions = open_store(cfg.db_url)
    password = None
    with sessions() as s:
        created = seed_demo(s, cfg.children)
        seed_readers(s)
        seed_cameras(s, lambda camera_id: stream_url(cfg.demo_rtsp_port, camera_id))
        if demo:
            password = _demo_accounts(s, cfg.data_dir)
    if created:
        log.info("seeded the demo: %d children", created)
    engine.dispose()
    return password


def _demo_accounts(session: Session, data_dir: Path) -> str | None:
    """Create the demo's accounts on first start and show their passwords
    once; later, read operator1's back from the file so the window still
    signs in by itself."""
    from db.demo_accounts import accounts_file, ensure_demo_accounts, read_demo_accounts

    path = accounts_file(data_dir)
    created = ensure_demo_accounts(session, path)
    if created is not None:
        print(f"demo accounts (also in {path}, readable by you only):")
        for user, password in created.items():
            print(f"  {user}\t{password}")
        sys.stdout.flush()
        return created.get("operator1")
    if not path.is_file():
        log.warning("the demo accounts exist but %s is gone: sign in by hand, or set a "
                    "password with: childsafe users passwd operator1", path)
        return None
    log.info("demo accounts and their passwords: %s", path)
    return read_demo_accounts(path).get("operator1")


def _wait_for_signal() -> None:
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    while not stop.wait(0.5):
        pass


def _run_backend(cfg: Config, services: tuple[str, ...], headless: bool,
                 sign_in: tuple[str, str] | None = None) -> int:
    from console.supervisor import Supervisor

    sup = Supervisor(cfg, services)
    sup.start()
    try:
        if headless:
            log.info("backend running (%s); Ctrl+C stops it", ", ".join(services))
            _wait_for_signal()
            return 0
        from console.app import run_console

        if sign_in is None:
            return run_console(cfg)
        return run_console(cfg, sign_in=sign_in)
    finally:
        sup.stop()


def cmd_demo(args: argparse.Namespace) -> int:
    """The demo's window signs in as operator1 by itself: a demo is for
    looking at the product, not for typing a password drawn at random."""
    from console.supervisor import DEMO

    cfg = _config(args)
    password = _prepare_store(cfg, demo=True)
    sign_in = ("operator1", password) if password else None
    return _run_backend(cfg, DEMO, args.headless, sign_in=sign_in)


def cmd_serve(args: argparse.Namespace) -> int:
    from console.supervisor import BACKEND

    cfg = _config(args)
    _prepare_store(cfg)
    return _run_backend(cfg, BACKEND, headless=True)


def cmd_console(args: argparse.Namespace) -> int:
    from console.app import run_console

    return run_console(_config(args))


def cmd_tap(args: argparse.Namespace) -> int:
    """Bus traffic as JSON lines, one per message.

    It also listens to heartbeats (shown only if the prefix asks for them):
    the first message through proves the subscription is live, which it
    announces on stderr as "tap: listening", so scripts can wait for it.
    """
    import zmq

    from console.bus import Subscriber
    from models.messages import to_jsonable

    cfg = _config(args)
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    sub = Subscriber(ctx, cfg.bus_sub, (args.prefix, "sys.heartbeat"))
    seen = 0
    listening = False
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        while not stop.is_set() and (args.count is None or seen < args.count):
            got = sub.recv(timeout_ms=200)
            if got is None:
                continue
            topic, msg = got
            if not listening:
                listening = True
                print("tap: listening", file=sys.stderr, flush=True)
            if not topic.startswith(args.prefix):
                continue
            print(json.dumps(to_jsonable(msg), ensure_ascii=False), flush=True)
            seen += 1
    except BrokenPipeError:
        pass
    finally:
        sub.close()
        ctx.term()
    return 0


def _sessions(args: argparse.Namespace) -> sessionmaker[Session]:
    from db.store import open_store

    return open_store(_config(args).db_url)[1]


def cmd_devices_list(args: argparse.Namespace) -> int:
    from db import repositories as repo
    from db.registry import unregistered

    with _sessions(args)() as s:
        if args.unregistered:
            for u in unregistered(s):
                seen = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(u.last_seen))
                print(f"{u.id}\t{u.protocol}\t{u.attempts} attempts\tlast {seen}")
            return 0
        for device_id, kind, token in repo.devices(s):
            print(f"{device_id}\t{kind}\t{token}")
    return 0


def cmd_devices_add(args: argparse.Namespace) -> int:
    from db.registry import add_device

    with _sessions(args)() as s:
        add_device(s, args.device_id, args.kind, args.child)
        s.commit()
    print(f"registered {args.kind} {args.device_id} to {args.child}")
    return 0


def cmd_devices_remove(args: argparse.Namespace) -> int:
    from db.registry import remove_device

    with _sessions(args)() as s:
        remove_device(s, args.device_id)
        s.commit()
    print(f"removed {args.device_id}")
    return 0


def cmd_gateway_stats(args: argparse.Namespace) -> int:
    """The gateway's counters, from its next heartbeat on the bus."""
    import zmq

    from console.bus import Subscriber, role_of
    from models.gateway_stats import GatewayCounters
    from models.messages import Heartbeat

    cfg = _config(args)
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    sub = Subscriber(ctx, cfg.bus_sub, ("sys.heartbeat",))
    deadline = time.monotonic() + args.timeout
    try:
        while time.monotonic() < deadline:
            got = sub.recv(timeout_ms=200)
            if got and isinstance(got[1], Heartbeat) and role_of(got[1].origin) == "gateway":
                print(GatewayCounters.from_stats(got[1].stats).table())
                return 0
    finally:
        sub.close()
        ctx.term()
    log.error("no gateway heartbeat within %.0f s; is the backend running?", args.timeout)
    return 1


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    from db.store import upgrade

    cfg = _config(args)
    upgrade(cfg.db_url)
    print(f"store at {cfg.db_url.split('@')[-1]} is up to date")
    return 0


def cmd_import_cameras(args: argparse.Namespace) -> int:
    from db.importers.cameras import run_import_cli

    return run_import_cli(_config(args).db_url, args.file, allow_partial=args.partial)


def _benchmarks_importable() -> None:
    """The benchmarks live in the checkout's ``tests/bench``, not in the
    installed package: make them importable however ``childsafe`` was
    started (the ``.venv/bin/childsafe`` script does not run from the
    checkout, so its root is not on ``sys.path``)."""
    root = Path(__file__).resolve().parents[1]
    if not (root / "tests" / "bench" / "__init__.py").is_file():
        raise RuntimeError(f"no benchmarks beside {root}: run childsafe bench from a source "
                           "checkout")
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))


def cmd_bench(args: argparse.Namespace) -> int:
    """``cameras`` is ranking speed and the console's CPU with a grid playing
    (``tests.bench.bench_cameras.report``, which includes ``cctv``); every
    other benchmark goes through ``run_benchmarks``."""
    _benchmarks_importable()
    from tests.bench import run_benchmarks

    which = [w.lower() for w in args.which]
    if "cameras" not in which:
        return run_benchmarks(which, _config(args), args.seconds)
    from tests.bench import bench_cameras

    rest = [w for w in which if w not in ("cameras", "cctv")]
    if rest:
        run_benchmarks(rest, _config(args), args.seconds)
        print()
    return bench_cameras.report(args.seconds, cameras=args.cameras or bench_cameras.CAMERAS,
                                tiles=args.tiles, size=args.size)


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--data-dir", type=Path, default=None,
                        help="installation folder (default: the platform's user data dir)")
    common.add_argument("--config", type=Path, default=None, help="TOML settings file")
    common.add_argument("-v", "--verbose", action="store_true")

    p = argparse.ArgumentParser(prog="childsafe", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    def add(name: str, fn: Callable[[argparse.Namespace], int], help_: str,
            parent: argparse._SubParsersAction[argparse.ArgumentParser] = sub,
            ) -> argparse.ArgumentParser:
        sp = parent.add_parser(name, parents=[common], help=help_)
        sp.set_defaults(fn=fn)
        return sp

    d = add("demo", cmd_demo, "run the whole system with simulated children")
    d.add_argument("--headless", action="store_true", help="no console window")
    d.add_argument("--children", type=int, default=None, help="children to simulate")
    d.add_argument("--db", default=None, help="database URL (default: SQLite in the data dir)")
    s = add("serve", cmd_serve, "run the backend processes only")
    s.add_argument("--db", default=None)
    add("console", cmd_console, "open the console against a running backend")
    t = add("tap", cmd_tap, "print bus traffic as JSON lines")
    t.add_argument("prefix", nargs="?", default="", help="topic prefix, e.g. alert.")
    t.add_argument("--count", type=int, default=None, help="stop after N messages")

    dev = sub.add_parser("devices", help="the device registry")
    dev_sub = dev.add_subparsers(dest="devices_command", required=True)
    dl = add("list", cmd_devices_list, "registered devices, id first", dev_sub)
    dl.add_argument("--db", default=None)
    dl.add_argument("--unregistered", action="store_true",
                    help="ids the gateway refused, most recent first")
    da = add("add", cmd_devices_add, "register a device to a child", dev_sub)
    da.add_argument("device_id")
    da.add_argument("--kind", required=True, choices=("watch", "phone", "tag"))
    da.add_argument("--child", required=True, help="the child's token, e.g. C-9D396A5")
    da.add_argument("--db", default=None)
    dr = add("remove", cmd_devices_remove, "unregister a device", dev_sub)
    dr.add_argument("device_id")
    dr.add_argument("--db", default=None)
    gw = sub.add_parser("gateway", help="the device gateway")
    gw_sub = gw.add_subparsers(dest="gateway_command", required=True)
    gs = add("stats", cmd_gateway_stats, "accepted and rejected input by protocol and reason",
             gw_sub)
    gs.add_argument("--timeout", type=float, default=5.0)
    dbp = sub.add_parser("db", help="the store")
    db_sub = dbp.add_subparsers(dest="db_command", required=True)
    du = add("upgrade", cmd_db_upgrade, "apply schema migrations", db_sub)
    du.add_argument("--db", default=None)

    imp = sub.add_parser("import", help="bring registry files into the store")
    imp_sub = imp.add_subparsers(dest="import_command", required=True)
    ic = add("cameras", cmd_import_cameras,
             "national CCTV standard data CSV (UTF-8 or CP949), all or nothing", imp_sub)
    ic.add_argument("file", type=Path)
    ic.add_argument("--partial", action="store_true",
                    help="write the valid rows even if some are rejected")
    ic.add_argument("--db", default=None)

    b = add("bench", cmd_bench, "measure throughput (numbers, not pass/fail)")
    b.add_argument("which", nargs="*", default=["pipeline", "map", "cameras"],
                   help="pipeline, map, cameras (rankings/s and console CPU with a 3×3 "
                        "grid playing), cctv (the grid alone), ingest "
                        "(default: the first three)")
    b.add_argument("--seconds", type=float, default=10.0)
    b.add_argument("--cameras", type=int, nargs="+", default=None, metavar="N",
                   help="cameras: registry sizes to rank over (default 6,600 and 66,000)")
    b.add_argument("--tiles", type=int, choices=(0, 1, 4, 9), default=9,
                   help="cameras: grid size for the CPU part (0: skip it)")
    b.add_argument("--size", default="320x240", metavar="WxH",
                   help="cameras: frame size of the streams the grid plays")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        return int(args.fn(args))
    except (ValueError, RuntimeError) as exc:  # RegistryError is a ValueError
        log.error("%s", exc)
        return 2
