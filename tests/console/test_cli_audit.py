"""``childsafe audit …`` as real subprocesses on a store made by ``childsafe
db upgrade``: what an auditor types on the server, against a log someone
tampered with behind the application's back."""

from __future__ import annotations

import csv
import getpass
import os
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from console.cli_audit import parse_time
from db import usage_log
from db.store import make_engine, session_factory, sqlite_url
from models.usage import UsageFilter

ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2026, 11, 1, 9, 0, tzinfo=UTC).timestamp()


def childsafe(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "CHILDSAFE_PASSWORD"}
    return subprocess.run([sys.executable, "-m", "console", *args, "--data-dir", str(data_dir)],
                          cwd=ROOT, env=env, stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, timeout=60)


@pytest.fixture
def store(data_dir: Path) -> Path:
    """A store made by the CLI, with five records written as the engine does."""
    out = childsafe(data_dir, "db", "upgrade")
    assert out.returncode == 0, out.stderr
    engine = make_engine(sqlite_url(data_dir))
    with session_factory(engine)() as s:
        for i, (actor, subject, action, purpose) in enumerate([
                ("operator1", "C-0000001", "reveal", "open alert 7"),
                ("operator1", "C-0000001", "trail", "alert 7"),
                ("operator2", "C-0000002", "history", "supervisor approval 3"),
                ("guardian", "C-0000002", "location_check", "\x1b[2Jmum\nasked\there"),
                ("retention", "", "purge", "retention schedule")]):
            usage_log.append(s, at=T0 + i * 3600, actor=actor, subject=subject, action=action,
                             purpose=purpose, alert_id=7 if i < 2 else None)
        s.commit()
    engine.dispose()
    return data_dir / "childsafe.sqlite3"


def test_verify_says_intact_then_names_the_edited_record(data_dir: Path, store: Path) -> None:
    out = childsafe(data_dir, "audit", "verify")
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("usage log intact: 5 records (head: record 5, ")
    noted = out.stdout.split(", ")[-1].rstrip(")\n")
    assert len(noted) == 64

    with sqlite3.connect(store) as db:  # someone with the file, behind our back
        db.execute("UPDATE usage_log SET purpose = 'routine' WHERE seq = 3")
    out = childsafe(data_dir, "audit", "verify")
    assert out.returncode == 1
    assert out.stdout.strip() == ("usage log BROKEN at record 3: record 3 was edited (its hash "
                                  "does not match) (2 records before it verified)")

    with sqlite3.connect(store) as db:
        db.execute("UPDATE usage_log SET purpose = 'supervisor approval 3' WHERE seq = 3")
        db.execute("DELETE FROM usage_log WHERE seq = 4")
    out = childsafe(data_dir, "audit", "verify")
    assert out.returncode == 1
    assert "BROKEN at record 4: record 4 is missing (the chain jumps from record 3 to 5)" in (
        out.stdout)


def test_list_filters_and_escapes(data_dir: Path, store: Path) -> None:
    out = childsafe(data_dir, "audit", "list")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert [line.split("\t")[0] for line in lines] == ["5", "4", "3", "2", "1"]
    guardian = lines[1].split("\t")
    assert len(guardian) == 8  # the tab and newline typed into the purpose stay in their cell
    assert guardian[6] == "\\u001b[2Jmum\\nasked\\there"
    assert "\x1b" not in out.stdout
    assert lines[0].split("\t")[3] == "-" and lines[4].split("\t")[5] == "7"

    out = childsafe(data_dir, "audit", "list", "--subject", "C-0000001", "--action", "trail")
    assert [line.split("\t")[:5] for line in out.stdout.splitlines()] == [
        ["2", datetime.fromtimestamp(T0 + 3600).astimezone().isoformat(timespec="seconds"),
         "operator1", "C-0000001", "trail"]]
    window = childsafe(data_dir, "audit", "list", "--since", "2026-11-01T10:00:00Z",
                       "--until", "2026-11-01T12:00:00+00:00", "--limit", "1")
    assert [line.split("\t")[0] for line in window.stdout.splitlines()] == ["3"]
    mine = childsafe(data_dir, "audit", "list", "--actor", "operator2")
    assert [line.split("\t")[0] for line in mine.stdout.splitlines()] == ["3"]

    bad = childsafe(data_dir, "audit", "list", "--since", "last tuesday")
    assert bad.returncode == 2 and "is not a date or time" in bad.stderr
    bad = childsafe(data_dir, "audit", "list", "--action", "peek")
    assert bad.returncode == 2 and "invalid choice" in bad.stderr


def test_export_writes_csv_and_is_itself_logged(data_dir: Path, store: Path) -> None:
    target = data_dir / "usage.csv"
    out = childsafe(data_dir, "audit", "export", "--out", str(target), "--subject", "C-0000002",
                    "--purpose", "inspection 2026-12")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"exported 2 records to {target}"
    assert oct(target.stat().st_mode & 0o777) == "0o600"
    with target.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    assert tuple(rows[0]) == usage_log.CSV_HEADER
    assert [(r[0], r[3], r[4], r[5]) for r in rows[1:]] == [
        ("3", "operator2", "C-0000002", "history"),
        ("4", "guardian", "C-0000002", "location_check")]
    assert rows[2][6] == "\x1b[2Jmum\nasked\there"  # CSV quotes it; the text is as typed

    engine = make_engine(sqlite_url(data_dir))
    with session_factory(engine)() as s:
        last = usage_log.query(s, UsageFilter(limit=1))[0]
        assert usage_log.verify(s).ok
    engine.dispose()
    assert (last.seq, last.action, last.actor, last.subject, last.purpose) == (
        6, "export", f"cli:{getpass.getuser()}"[:64], "C-0000002", "inspection 2026-12")
    assert last.detail == "usage log, 2 rows; filter: subject C-0000002"

    again = childsafe(data_dir, "audit", "export", "--out", str(target))
    assert again.returncode == 2 and "exists" in again.stderr
    too_long = childsafe(data_dir, "audit", "export", "--out", str(data_dir / "b.csv"),
                         "--purpose", "x" * 201)
    assert too_long.returncode == 2 and "purpose is longer than 200" in too_long.stderr
    assert not (data_dir / "b.csv").exists()
    verify = childsafe(data_dir, "audit", "verify")
    assert verify.stdout.startswith("usage log intact: 6 records")


def test_an_export_that_cannot_be_recorded_leaves_no_file(
        data_dir: Path, store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The store refuses the "export" record (locked, full): the copy made
    a moment before is removed, so nothing leaves unrecorded."""
    from sqlalchemy.exc import OperationalError

    from console.cli import build_parser

    def refuse(*_: object, **__: object) -> int:
        raise OperationalError("INSERT INTO usage_log", {}, Exception("database is locked"))

    monkeypatch.setattr(usage_log, "append", refuse)
    target = data_dir / "copy.csv"
    args = build_parser().parse_args(["audit", "export", "--out", str(target),
                                      "--data-dir", str(data_dir)])
    with pytest.raises(OperationalError):
        args.fn(args)
    assert not target.exists()


def test_parse_time_reads_what_people_type() -> None:
    assert parse_time("2026-11-01T09:00:00Z") == T0
    assert parse_time(" 2026-11-01T18:00+09:00 ") == T0
    local = datetime(2026, 11, 1).astimezone().timestamp()
    assert parse_time("2026-11-01") == local
    with pytest.raises(ValueError, match="not a date"):
        parse_time("1 Nov")
