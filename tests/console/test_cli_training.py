"""``childsafe scenarios`` and ``childsafe replay``'s checks, in-process with
the real parser: what a trainer reads before any session starts."""

from __future__ import annotations

import argparse
import datetime as dt
from pathlib import Path

import pytest

from console.cli import build_parser
from console.cli_training import parse_time


def run(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    return int(args.fn(args))


def test_scenarios_lists_the_authored_ones(capsys: pytest.CaptureFixture[str],
                                           data_dir: Path) -> None:
    assert run(["scenarios", "--data-dir", str(data_dir)]) == 0
    rows = [line.split("\t") for line in capsys.readouterr().out.splitlines()]
    assert {r[0] for r in rows} >= {"school-morning-sos", "park-zone-exit",
                                    "after-school-rush"}
    assert all(r[1].endswith(" min") and r[2].endswith(" incidents") and r[3] for r in rows)


@pytest.mark.parametrize("argv, says", [
    ([], "name a --scenario, or a period with --from and --to"),
    (["--scenario", "no-such"], "no scenario 'no-such'; there are: after-school-rush"),
    (["--from", "2026-12-06T09:00", "--to", "2026-12-06T08:00"], "--from must come before"),
    (["--from", "2026-12-06T08:00"], "name a --scenario, or a period"),
    (["--from", "yesterday", "--to", "today"], "'yesterday' is not a time"),
])
def test_replay_refuses_what_it_cannot_play_before_starting_anything(
        argv: list[str], says: str, capsys: pytest.CaptureFixture[str],
        data_dir: Path) -> None:
    assert run(["replay", "--data-dir", str(data_dir), *argv]) == 2
    assert says in capsys.readouterr().err
    assert not (data_dir / "training").exists()  # nothing was set up


def test_replay_takes_only_the_player_speeds(data_dir: Path) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["replay", "--data-dir", str(data_dir), "--speed", "3"])


def test_times_are_local_unless_they_say_otherwise() -> None:
    kst = 9 * 3600.0
    assert parse_time("2026-12-06T08:30", kst) == dt.datetime(
        2026, 12, 5, 23, 30, tzinfo=dt.UTC).timestamp()
    assert parse_time("2026-12-06T08:30+00:00", kst) == dt.datetime(
        2026, 12, 6, 8, 30, tzinfo=dt.UTC).timestamp()
    assert parse_time("1796536629.5", kst) == 1796536629.5
    with pytest.raises(argparse.ArgumentTypeError, match="not a time"):
        parse_time("yesterday", kst)
