"""``childsafe replay`` and ``childsafe scenarios``: trainer mode from the
command line (``console.training``)."""

from __future__ import annotations

import argparse
import datetime as dt
import getpass
import signal
import sys
from collections.abc import Callable
from typing import Any

from console.config import Config
from console.training.player import SPEEDS


def parse_time(text: str, utc_offset_s: float) -> float:
    """Epoch seconds, or ISO 8601 (local time, ``utc_offset_s``, when it
    names no offset): what a trainer types for a recorded period."""
    try:
        return float(text)
    except ValueError:
        pass
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a time: write 2026-12-06T08:30 or epoch seconds") from exc
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.timezone(dt.timedelta(seconds=utc_offset_s)))
    return when.timestamp()


def cmd_replay(args: argparse.Namespace, config: Callable[[argparse.Namespace], Config]) -> int:
    from console.training.session import Plan, TrainingSession
    from models.scenario import ScenarioError, load_scenarios

    live = config(args)
    if args.scenario:
        try:
            found = {s.id: s for s in load_scenarios()}
        except ScenarioError as exc:
            print(f"replay: {exc}", file=sys.stderr)
            return 2
        if args.scenario not in found:
            print(f"replay: no scenario {args.scenario!r}; there are: "
                  f"{', '.join(sorted(found))}", file=sys.stderr)
            return 2
        plan = Plan(scenario=found[args.scenario], by=args.by)
    else:
        if args.start is None or args.end is None:
            print("replay: name a --scenario, or a period with --from and --to",
                  file=sys.stderr)
            return 2
        try:
            t0 = parse_time(args.start, live.local_utc_offset_s)
            t1 = parse_time(args.end, live.local_utc_offset_s)
        except argparse.ArgumentTypeError as exc:
            print(f"replay: {exc}", file=sys.stderr)
            return 2
        if not t0 < t1:
            print("replay: --from must come before --to", file=sys.stderr)
            return 2
        plan = Plan(t0=t0, t1=t1, by=args.by)
    session = TrainingSession(live, plan)
    signal.signal(signal.SIGTERM, lambda *_: session.stop_event.set())
    signal.signal(signal.SIGINT, lambda *_: session.stop_event.set())
    try:
        session.start()
        print(f"training session: {plan.title}\n  trainees: childsafe console --training "
              f"--data-dir {live.data_dir}", flush=True)
        session.run(until_end=args.until_end, speed=args.speed, play=not args.paused)
    except RuntimeError as exc:
        session.close()
        print(f"replay: {exc}", file=sys.stderr)
        return 1
    outcome = session.finish()
    for s in outcome.scores:
        pct = "-" if s.totals.percent is None else f"{s.totals.percent:.0f}%"
        print(f"{s.trainee}: {pct}, missed {len(s.totals.missed)}")
    if outcome.report is not None:
        print(f"report: {outcome.report}")
    return 0


def cmd_scenarios(_args: argparse.Namespace) -> int:
    from models.scenario import load_scenarios

    for s in load_scenarios():
        print(f"{s.id}\t{s.duration_s / 60:.0f} min\t{len(s.incidents)} incidents\t{s.title}")
    return 0


def add_training(sub: Any, add: Callable[..., argparse.ArgumentParser],
                 config: Callable[[argparse.Namespace], Config]) -> None:
    r = add("replay", lambda a: cmd_replay(a, config),
            "train on a recorded period or a scenario, on an isolated training bus")
    r.add_argument("--from", dest="start", default=None, metavar="TIME",
                   help="start of the recorded period (ISO 8601 local time, or epoch)")
    r.add_argument("--to", dest="end", default=None, metavar="TIME")
    r.add_argument("--scenario", default=None, help="a scenario id (childsafe scenarios)")
    r.add_argument("--speed", type=float, default=1.0, choices=SPEEDS)
    r.add_argument("--paused", action="store_true", help="wait for the trainer to press play")
    r.add_argument("--until-end", action="store_true",
                   help="stop (and score) once the period has played")
    r.add_argument("--by", default=getpass.getuser(),
                   help="the trainer, for the usage log (default: you)")
    add("scenarios", cmd_scenarios, "the training scenarios in resources/scenarios")
