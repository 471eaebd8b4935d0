"""``childsafe`` — the command line operators, tests and scripts rely on.

Every command takes ``--data-dir``: the store, the bus sockets and the logs
of one installation live under it.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from console.cli_keys import add_keys
from console.config import Config

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker

    from console.engine_client import EngineClient
    from models.messages import AlertCommand, AlertView

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
    from db.timetables import demo_timetables

    engine, sessions = open_store(cfg.db_url)
    password = None
    with sessions() as s:
        created = seed_demo(s, cfg.children)
        seed_readers(s)
        seed_cameras(s, lambda camera_id: stream_url(cfg.demo_rtsp_port, camera_id))
        if created:  # a fresh demo: school children get a school timetable
            demo_timetables(s)
            s.commit()
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


def _wait_for_signal(alive: Callable[[], bool] = lambda: True) -> None:
    """Until SIGINT or SIGTERM; under systemd, tell it we are ready, then
    ping its watchdog while ``alive()`` (the supervisor's own health)."""
    from console.sd_notify import notify, watchdog_interval_s

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    notify("READY=1")
    every = watchdog_interval_s()
    next_ping = 0.0
    while not stop.wait(0.5 if every is None else min(0.5, every)):
        if every is not None and time.monotonic() >= next_ping and alive():
            notify("WATCHDOG=1")
            next_ping = time.monotonic() + every
    notify("STOPPING=1")


def _run_backend(cfg: Config, services: tuple[str, ...], headless: bool,
                 sign_in: tuple[str, str] | None = None) -> int:
    from console.supervisor import Supervisor

    sup = Supervisor(cfg, services)
    sup.start()
    try:
        if headless:
            log.info("backend running (%s); Ctrl+C stops it", ", ".join(services))
            _wait_for_signal(sup.alive)
            return 0
        from console.app import run_console

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

    cfg = _config(args)
    if args.training:  # a trainee's (or the trainer's) console on the training bus
        from console.training.install import for_console

        cfg = for_console(cfg)
    return run_console(cfg)


def cmd_tap(args: argparse.Namespace) -> int:
    """Bus traffic as JSON lines, one per message.

    It also listens to heartbeats (shown only if the prefix asks for them):
    the first message through proves the subscription is live, which it
    announces on stderr as "tap: listening", so scripts can wait for it.
    """
    import zmq

    from console.bus import Subscriber
    from console.security import Security
    from models.messages import to_jsonable

    cfg = _config(args)
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    sub = Subscriber(ctx, cfg.bus_sub, (args.prefix, "sys.heartbeat"),
                     security=Security.console(cfg))
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


# ------------------------------------------------------------------ accounts

PASSWORD_ENV = "CHILDSAFE_PASSWORD"


def _password(confirm: bool) -> str:
    """The password from ``CHILDSAFE_PASSWORD`` (scripts) or a prompt, never
    from the command line, where ``ps`` and shell history would show it.

    Without a terminal there is nobody to answer a prompt: say so instead
    of waiting forever (getpass would read /dev/tty behind a closed stdin).
    """
    from_env = os.environ.get(PASSWORD_ENV)
    if from_env:
        return from_env
    if not sys.stdin.isatty():
        raise ValueError(f"no password: set {PASSWORD_ENV} or run this in a terminal")
    import getpass

    from models.accounts import check_password

    password = getpass.getpass("password: ")
    if confirm:
        check_password(password)  # before asking again for one that cannot be used
        if getpass.getpass("again: ") != password:
            raise ValueError("the two passwords differ; nothing changed")
    return password


def _record(session: Session, user: str, action: str, detail: str) -> None:
    """Account changes made here go to the access log like the engine's, so
    an auditor sees who was given access, not only who signed in."""
    import getpass

    from db.accounts import log as access_log

    access_log(session, user, action, True, f"{detail}; command line, {getpass.getuser()}")


def cmd_users_add(args: argparse.Namespace) -> int:
    from db.accounts import add_user
    from models.accounts import check_user_name, parse_roles

    check_user_name(args.name)
    roles = sorted(parse_roles(args.role))  # refuse bad input before asking for a password
    password = _password(confirm=True)
    with _sessions(args)() as s:
        add_user(s, args.name, roles, password)
        _record(s, args.name, "user.add", "roles " + ",".join(roles))
        s.commit()
    print(f"added {args.name} ({', '.join(roles)})")
    return 0


def _lock_note(locked_until: float, now: float) -> str:
    if locked_until <= now:
        return ""
    at = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(locked_until))
    return f"\tlocked until {at}"


def cmd_users_list(args: argparse.Namespace) -> int:
    from db.accounts import users

    now = time.time()
    with _sessions(args)() as s:
        for u in users(s):
            state = "disabled" if u.disabled else "enabled"
            print(f"{u.name}\t{u.roles}\t{state}{_lock_note(u.locked_until, now)}")
    return 0


def cmd_users_disable(args: argparse.Namespace) -> int:
    from db.accounts import disable

    with _sessions(args)() as s:
        ended = disable(s, args.name)
        _record(s, args.name, "user.disable", f"{ended} session(s) ended")
        s.commit()
    print(f"disabled {args.name}; ended {ended} session(s) (the engine shuts them out "
          "within seconds)")
    return 0


def cmd_users_passwd(args: argparse.Namespace) -> int:
    from db.accounts import get_user, set_password

    with _sessions(args)() as s:
        get_user(s, args.name)  # no prompt for a user who does not exist
        password = _password(confirm=True)
        set_password(s, args.name, password)
        _record(s, args.name, "user.passwd", "password set, lockout cleared")
        s.commit()
    print(f"password of {args.name} changed")
    return 0


# -------------------------------------------------------------------- alerts

ALERT_ACTIONS = ("ack", "take", "assign", "hold", "resume", "dispatch", "resolve", "reopen",
                 "note", "step")


def _with_engine(args: argparse.Namespace, work: Callable[[EngineClient], int]) -> int:
    """Sign in as ``--user``, run ``work``, sign out; an engine refusal (of
    the sign-in too) is printed and exits 1."""
    from console.engine_client import EngineClient, EngineRefused
    from console.security import Security

    cfg = _config(args)
    password = _password(confirm=False)
    try:
        with EngineClient(cfg.engine_rpc, timeout_s=args.timeout,
                          security=Security.console(cfg)) as engine:
            engine.sign_in(args.user, password)
            return work(engine)
    except EngineRefused as exc:
        print(f"refused ({exc.code}): {exc}", file=sys.stderr)
        return 1


def _alert_line(a: AlertView) -> str:
    """id first, tab-separated, so ``cut`` and ``awk`` take it apart."""
    return "\t".join((str(a.id), a.kind, f"P{a.priority}", a.state, a.owner or "-",
                      str(a.count), a.child_token, a.place))


def cmd_alerts_list(args: argparse.Namespace) -> int:
    from models.messages import AlertList, AlertsRequest

    open_only = args.open or (not args.all and args.since is None)
    since = time.time() - 3600.0 * (24.0 if args.since is None else args.since)

    def work(engine: EngineClient) -> int:
        req = AlertsRequest(token=engine.token, open_only=open_only, since=since)
        for alert in engine.call(req, AlertList).alerts:
            print(_alert_line(alert))
        return 0

    return _with_engine(args, work)


def _check_alert_args(args: argparse.Namespace) -> None:
    """Refuse a malformed command before a password is asked or the engine
    is bothered; what the arguments mean is still the engine's to judge."""
    action = args.action
    if action in ("assign", "step") and not args.argument:
        raise ValueError(f"alert {action} needs a {'user' if action == 'assign' else 'step'}")
    if action not in ("assign", "step") and args.argument:
        raise ValueError(f"alert {action} takes no argument (got {args.argument!r})")
    if action == "dispatch" and not args.target:
        raise ValueError("alert dispatch needs --target police|fire and --reference R")
    if action == "resolve" and not args.outcome:
        raise ValueError("alert resolve needs --outcome and --note saying what happened")
    if args.until < 0:
        raise ValueError("--until is minutes from now, not negative")


def _alert_command(args: argparse.Namespace, token: str, alert: AlertView) -> AlertCommand:
    """The command message for ``alert ID ACTION``, naming the version just read."""
    from models import messages as m

    common = {"token": token, "alert_id": alert.id, "alert_version": alert.version,
              "note": args.note}
    action = args.action
    if action == "assign":
        return m.AssignAlert(user=args.argument, **common)
    if action == "step":
        return m.MarkStep(step=args.argument, skipped=args.skip, **common)
    if action == "hold":
        until = time.time() + 60.0 * args.until if args.until else 0.0
        return m.HoldAlert(reason=args.reason, until=until, **common)
    if action == "dispatch":
        return m.DispatchAlert(target=args.target, reference=args.reference, **common)
    if action == "resolve":
        return m.ResolveAlert(outcome=args.outcome, **common)
    simple: dict[str, type[AlertCommand]] = {
        "ack": m.AckAlert, "take": m.TakeAlert, "resume": m.ResumeAlert,
        "reopen": m.ReopenAlert, "note": m.AddNote}
    return simple[action](**common)


def cmd_alert(args: argparse.Namespace) -> int:
    """Read the alert's current version, then act on it: the engine refuses a
    command naming a version that is no longer current, as it does a
    console's, so two people never both win."""
    from models.messages import AlertDetail, AlertDetailRequest, CommandReply

    _check_alert_args(args)

    def work(engine: EngineClient) -> int:
        seen = engine.call(AlertDetailRequest(token=engine.token, alert_id=args.alert_id),
                           AlertDetail).alert
        reply = engine.call(_alert_command(args, engine.token, seen), CommandReply)
        a = reply.alert or seen
        print(f"alert {a.id} {a.state} (owner {a.owner or '-'}, version {a.version})")
        return 0

    return _with_engine(args, work)


def cmd_gateway_stats(args: argparse.Namespace) -> int:
    """The gateway's counters, from its next heartbeat on the bus."""
    import zmq

    from console.bus import Subscriber, role_of
    from console.security import Security
    from models.gateway_stats import GatewayCounters
    from models.messages import Heartbeat

    cfg = _config(args)
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    sub = Subscriber(ctx, cfg.bus_sub, ("sys.heartbeat",), security=Security.console(cfg))
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
        return run_benchmarks(which, _config(args), args.seconds, markers=args.markers)
    from tests.bench import bench_cameras

    rest = [w for w in which if w not in ("cameras", "cctv")]
    if rest:
        run_benchmarks(rest, _config(args), args.seconds, markers=args.markers)
        print()
    return bench_cameras.report(args.seconds, cameras=args.cameras or bench_cameras.CAMERAS,
                                tiles=args.tiles, size=args.size)


def cmd_chaos(args: argparse.Namespace) -> int:
    """The fault suite against private installations (``console.chaos``):
    ``--data-dir`` is only where their temp dirs go, never an installation
    of yours."""
    from console.chaos import run

    return run(args.seconds, args.only, args.data_dir, args.keep)


AddCommand = Callable[..., argparse.ArgumentParser]
SubParsers = argparse._SubParsersAction  # type: ignore[type-arg]


def _add_users(sub: SubParsers, add: AddCommand) -> None:
    from models.accounts import ROLES

    users = sub.add_parser("users", help="accounts (on the server, in the store)")
    users_sub = users.add_subparsers(dest="users_command", required=True)
    password = f"the password is asked twice, or taken from ${PASSWORD_ENV}"
    ua = add("add", cmd_users_add, f"add an account; {password}", users_sub)
    ua.add_argument("name")
    ua.add_argument("--role", action="append", required=True, choices=ROLES,
                    help="repeat for several roles")
    ul = add("list", cmd_users_list, "accounts: name, roles, enabled or disabled, lock",
             users_sub)
    ud = add("disable", cmd_users_disable, "disable an account and end its sessions",
             users_sub)
    ud.add_argument("name")
    up = add("passwd", cmd_users_passwd, f"set an account's password; {password}", users_sub)
    up.add_argument("name")
    for sp in (ua, ul, ud, up):
        sp.add_argument("--db", default=None, help="database URL (default: SQLite in the "
                        "data dir)")


def _signed_in_options(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("--user", required=True,
                    help=f"account to sign in as; its password is asked, or ${PASSWORD_ENV}")
    sp.add_argument("--timeout", type=float, default=10.0,
                    help="seconds to wait for each answer of the engine")


def _add_alerts(sub: SubParsers, add: AddCommand) -> None:
    from models.alerts import DISPATCH_TARGETS, OUTCOMES

    alerts = sub.add_parser("alerts", help="alerts, through the engine")
    alerts_sub = alerts.add_subparsers(dest="alerts_command", required=True)
    al = add("list", cmd_alerts_list, "one alert a line: id, kind, priority, state, owner, "
             "count, child, place (tab-separated)", alerts_sub)
    which = al.add_mutually_exclusive_group()
    which.add_argument("--open", action="store_true", help="unresolved alerts (the default)")
    which.add_argument("--all", action="store_true",
                       help="also resolved ones opened within --since hours")
    al.add_argument("--since", type=float, default=None, metavar="HOURS",
                    help="with --all: hours back (default 24); alone, implies --all")
    _signed_in_options(al)

    a = add("alert", cmd_alert, "act on one alert through the engine, as a console does")
    a.add_argument("alert_id", type=int, metavar="ID")
    a.add_argument("action", choices=ALERT_ACTIONS)
    a.add_argument("argument", nargs="?", default="", metavar="USER|STEP",
                   help="assign: the user; step: the procedure step")
    a.add_argument("--note", default="", help="why (resolve, reopen, a skipped step need one)")
    a.add_argument("--reason", default="", help="hold: why")
    a.add_argument("--until", type=float, default=0.0, metavar="MINUTES",
                   help="hold: for this long (default: the engine's 15 minutes)")
    a.add_argument("--target", choices=tuple(DISPATCH_TARGETS), help="dispatch: who")
    a.add_argument("--reference", default="", help="dispatch: the case number they gave")
    a.add_argument("--outcome", choices=OUTCOMES, help="resolve: what it turned out to be")
    a.add_argument("--skip", action="store_true", help="step: skipped (say why in --note)")
    _signed_in_options(a)


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
    cons = add("console", cmd_console, "open the console against a running backend")
    cons.add_argument("--training", action="store_true",
                      help="join the training session (childsafe replay) instead")
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
    _add_users(sub, add)
    from console.cli_privacy import add_privacy

    add_privacy(sub, add)
    from console.cli_children import add_children, add_import_roster
    from console.cli_timetable import add_timetable

    add_children(sub, add)

    add_timetable(sub, add)
    add_keys(sub, add)
    _add_alerts(sub, add)
    from console.cli_training import add_training

    add_training(sub, add, _config)
    from console.cli_audit import add_audit

    add_audit(sub, add)
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
    add_import_roster(imp_sub, add)
    from console.cli_zones import add_import_zones, add_zones

    add_import_zones(imp_sub, add)
    add_zones(sub, add)

    b = add("bench", cmd_bench, "measure throughput (numbers, not pass/fail)")
    b.add_argument("which", nargs="*", default=["pipeline", "map", "cameras"],
                   help="pipeline, map, cameras (rankings/s and console CPU with a 3×3 "
                        "grid playing), cctv (the grid alone), ingest, alerts (commands/s "
                        "through the engine and SOS-to-console p99 while alerts are worked) "
                        "(default: the first three)")
    b.add_argument("--seconds", type=float, default=10.0)
    b.add_argument("--cameras", type=int, nargs="+", default=None, metavar="N",
                   help="cameras: registry sizes to rank over (default 6,600 and 66,000)")
    b.add_argument("--markers", type=int, nargs="+", default=None, metavar="N",
                   help="map: children on the map, each a redraw, pan/zoom, memory and "
                        "cold-start run (default 10,000, 100,000 and 580,000)")
    b.add_argument("--tiles", type=int, choices=(0, 1, 4, 9), default=9,
                   help="cameras: grid size for the CPU part (0: skip it)")
    b.add_argument("--size", default="320x240", metavar="WxH",
                   help="cameras: frame size of the streams the grid plays")
    from console.chaos import FAULT_NAMES

    c = add("chaos", cmd_chaos, "inject each fault into a private installation and print "
            "what was acknowledged, stored and shown (exit 1 if anything acknowledged was lost)")
    c.add_argument("--seconds", type=float, default=10.0, help="length of each fault window")
    c.add_argument("--only", nargs="+", choices=FAULT_NAMES, metavar="NAME",
                   help=f"run only these: {', '.join(FAULT_NAMES)}")
    c.add_argument("--keep", action="store_true",
                   help="keep each private installation's files (logs) for a post-mortem")
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
