"""``childsafe timetable|calendar|exception …`` in-process, parsed by the
parser ``add_timetable`` builds, on a fresh SQLite store in a data dir: what
the administrator reads, and what the store then holds."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from console.cli import build_parser
from db import changes
from db.seed import seed_demo
from db.store import open_store, sqlite_url
from db.tables import Child, Zone
from models.timetable import TimetableError

SCHOOL = "Sindorim Elementary"


@pytest.fixture
def store(data_dir: Path) -> Iterator[tuple[Path, str]]:
    """A data dir whose store has the demo's zones and children; and the
    token of a child at a school."""
    engine, sessions = open_store(sqlite_url(data_dir))
    with sessions() as s:
        seed_demo(s, 13)
        token = s.scalar(select(Child.token).join(Zone, Zone.id == Child.zone_id)
                         .where(Zone.name == SCHOOL).order_by(Child.id))
    engine.dispose()
    assert token
    yield data_dir, token


def _parser() -> argparse.ArgumentParser:
    """The real command line, as `childsafe` builds it."""
    return build_parser()


def run(data_dir: Path, capsys: pytest.CaptureFixture[str], *argv: str) -> list[list[str]]:
    args = _parser().parse_args([*argv, "--data-dir", str(data_dir)])
    assert args.fn(args) == 0
    return [line.split("\t") for line in capsys.readouterr().out.splitlines()]


def _changes(data_dir: Path, scope: str) -> list[tuple[str, str, str]]:
    engine, sessions = open_store(sqlite_url(data_dir))
    try:
        with sessions() as s:
            return [(c.key, c.action, c.detail) for c in changes.history(s, scope)]  # type: ignore[arg-type]
    finally:
        engine.dispose()


def test_timetable(store: tuple[Path, str], capsys: pytest.CaptureFixture[str]) -> None:
    data_dir, token = store
    out = run(data_dir, capsys, "timetable", "set", token, "--day", "mon-fri", "--zone", SCHOOL,
              "--kind", "school", "--from", "08:40", "--to", "14:40")
    assert len(out) == 5 and out[0] == [f"{token}: mon school 08:40-14:40 at {SCHOOL}"]
    run(data_dir, capsys, "timetable", "set", token, "--day", "월,수", "--zone",
        "Seoul Forest Park", "--kind", "academy", "--from", "15:30", "--to", "17:00")
    week = run(data_dir, capsys, "timetable", "show", token)
    assert week[:2] == [["mon", "school", "08:40-14:40", SCHOOL],
                        ["mon", "academy", "15:30-17:00", "Seoul Forest Park"]]
    assert len(week) == 7
    assert run(data_dir, capsys, "timetable", "clear", token, "--day", "wed", "--kind",
               "academy") == [[f"{token}: 1 slot deleted"]]
    assert run(data_dir, capsys, "timetable", "clear", token) == [[f"{token}: 6 slots deleted"]]
    assert run(data_dir, capsys, "timetable", "show", token) == [
        [f"{token}: no timetable (expected nowhere)"]]
    assert [a for _, a, _ in _changes(data_dir, "timetables")] == ["remove"] * 2 + ["add"] * 7


def test_refusals_change_nothing(store: tuple[Path, str],
                                 capsys: pytest.CaptureFixture[str]) -> None:
    data_dir, token = store
    run(data_dir, capsys, "timetable", "set", token, "--day", "mon", "--zone", SCHOOL,
        "--kind", "school", "--from", "08:40", "--to", "14:40")
    bad = [
        # Tuesday would be fine, Monday overlaps: neither is written.
        (["timetable", "set", token, "--day", "mon,tue", "--zone", "Seoul Forest Park",
          "--kind", "academy", "--from", "14:00", "--to", "16:00"], "overlaps"),
        (["timetable", "set", "C-NOPE", "--day", "mon", "--zone", SCHOOL, "--kind", "school",
          "--from", "08:40", "--to", "14:40"], "C-NOPE"),
        (["timetable", "set", token, "--day", "mon", "--zone", "Atlantis", "--kind", "school",
          "--from", "08:40", "--to", "14:40"], "Atlantis"),
        (["timetable", "set", token, "--day", "someday", "--zone", SCHOOL, "--kind", "school",
          "--from", "08:40", "--to", "14:40"], "someday"),
        (["timetable", "set", token, "--day", "tue", "--zone", SCHOOL, "--kind", "school",
          "--from", "8h40", "--to", "14:40"], "HH:MM"),
        (["calendar", "add", "2026-13-01", "x"], "YYYY-MM-DD"),
        (["exception", "add", token, "2026-03-09", "trip", "--zone", SCHOOL], "together"),
    ]
    for argv, match in bad:
        args = _parser().parse_args([*argv, "--data-dir", str(data_dir)])
        with pytest.raises(TimetableError, match=match):
            args.fn(args)
    assert len(run(data_dir, capsys, "timetable", "show", token)) == 1
    assert len(_changes(data_dir, "timetables")) == 1


def test_calendar(store: tuple[Path, str], capsys: pytest.CaptureFixture[str]) -> None:
    data_dir, _ = store
    assert run(data_dir, capsys, "calendar", "add", "2026-07-27", "여름방학") == [
        ["2026-07-27", "city-wide", "여름방학"]]
    run(data_dir, capsys, "calendar", "add", "2026-04-02", "개교기념일", "--zone", SCHOOL)
    listed = run(data_dir, capsys, "calendar", "list", "--year", "2026")
    assert ["2026-04-02", "thu", SCHOOL, "개교기념일", "closure"] in listed
    assert ["2026-07-27", "mon", "city-wide", "여름방학", "city-wide day"] in listed
    assert ["2026-09-25", "fri", "city-wide", "추석 (Chuseok)", "public holiday"] in listed
    assert [line[0] for line in listed] == sorted(line[0] for line in listed)
    assert run(data_dir, capsys, "calendar", "remove", "2026-04-02", "--zone", SCHOOL) == [
        ["removed 2026-04-02", SCHOOL, "개교기념일"]]
    args = _parser().parse_args(["calendar", "remove", "2026-05-05", "--data-dir",
                                 str(data_dir)])
    with pytest.raises(TimetableError, match="built in"):
        args.fn(args)
    assert [k for k, _, _ in _changes(data_dir, "calendar")] == [
        f"2026-04-02 {SCHOOL}", f"2026-04-02 {SCHOOL}", "2026-07-27"]
    # A year the table does not know: said so, and only the store's days listed.
    args = _parser().parse_args(["calendar", "list", "--year", "2031", "--data-dir",
                                 str(data_dir)])
    assert args.fn(args) == 0
    got = capsys.readouterr()
    assert got.out == "" and "no built-in public holidays for 2031" in got.err


def test_exceptions(store: tuple[Path, str], capsys: pytest.CaptureFixture[str]) -> None:
    data_dir, token = store
    [[first, child, what]] = run(data_dir, capsys, "exception", "add", token, "2026-03-09",
                                 "absent", "--note", "독감")
    assert child == token and what == "2026-03-09 absent (독감)"
    run(data_dir, capsys, "exception", "add", token, "2026-03-10", "trip", "--zone",
        "Seoul Forest Park", "--from", "09:30", "--to", "13:00", "--note", "현장체험학습")
    assert [line[1] for line in run(data_dir, capsys, "exception", "list", token)] == [
        "2026-03-09 absent (독감)",
        "2026-03-10 trip at Seoul Forest Park 09:30-13:00 (현장체험학습)"]
    assert len(run(data_dir, capsys, "exception", "list", token, "--since",
                   "2026-03-10")) == 1
    assert run(data_dir, capsys, "exception", "remove", first) == [
        [f"removed {first}", "2026-03-09 absent (독감)"]]
    assert len(run(data_dir, capsys, "exception", "list", token)) == 1
    assert [a for _, a, _ in _changes(data_dir, "timetables")] == ["remove", "add", "add"]
