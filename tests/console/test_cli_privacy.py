"""``childsafe guardians …`` and ``childsafe consent …`` as real subprocesses
on a fresh store: what an administrator types when a consent form or a
withdrawal arrives, checked against what the store then holds."""

from __future__ import annotations

import getpass
import os
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import func, insert, select

from db import consent as db_consent
from db import repositories as repo
from db.seed import seed_demo
from db.store import open_store, sqlite_url
from db.tables import Alert, Consent, Fix, Guardian, UsageRecord

ROOT = Path(__file__).resolve().parents[2]


def childsafe(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "CHILDSAFE_PASSWORD"}
    return subprocess.run([sys.executable, "-m", "console", *args, "--data-dir", str(data_dir)],
                          cwd=ROOT, env=env, stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, timeout=60)


def _store(data_dir: Path) -> tuple[str, str, str]:
    """Upgrade by the command line, then seed three children (with their
    seeded consent) and give the first one a history: 5 old fixes and 2
    inside an open alert's case window. Returns (first, second) tokens and
    the first one's device."""
    out = childsafe(data_dir, "db", "upgrade")
    assert out.returncode == 0, out.stderr
    engine, sessions = open_store(sqlite_url(data_dir))
    with sessions() as s:
        seed_demo(s, 3)
        first, second = repo.roster(s)[:2]
        now = time.time()
        s.execute(insert(Fix), [dict(device_id=first.device_id, t=t, lat=37.5, lon=127.0,
                                     speed=0.0, bearing=0.0, accuracy=5.0, battery=90,
                                     flags=0, reader_id=None)
                                for t in [now - 86400 - i for i in range(5)]
                                + [now - 600, now - 60]])
        s.add(Alert(kind="sos", priority=1, state="new", child_id=first.child_id,
                    device_id=first.device_id, lat=37.5, lon=127.0, place="성동구",
                    opened_at=now - 300))
        s.commit()
    engine.dispose()
    return first.token, second.token, first.device_id


def _count(data_dir: Path, table: type[object]) -> int:
    engine, sessions = open_store(sqlite_url(data_dir))
    try:
        with sessions() as s:
            return int(s.scalar(select(func.count()).select_from(table)) or 0)  # type: ignore[arg-type]
    finally:
        engine.dispose()


def test_guardian_consent_and_withdrawal_from_the_command_line(data_dir: Path) -> None:
    token, other, device = _store(data_dir)

    out = childsafe(data_dir, "guardians", "add", "--name", "홍길동 어머니", "--phone",
                    "+82 10-0000-7777", "--email", "mother@example.kr", "--child", token,
                    "--relation", "mother")
    assert out.returncode == 0, out.stderr
    guardian_id = int(out.stdout.split("\t")[0])

    out = childsafe(data_dir, "guardians", "list", "--child", token)
    assert out.returncode == 0, out.stderr
    lines = [line.split("\t") for line in out.stdout.splitlines()]
    assert len(lines) == 2  # the seeded guardian and the new one
    assert lines[-1] == [str(guardian_id), "홍길동 어머니", "+82 10-0000-7777",
                         "mother@example.kr", f"{token}:mother"]
    assert lines[0][4] == f"{token}:parent" and lines[0][1].endswith(" 보호자")

    out = childsafe(data_dir, "consent", "give", token, "--guardian", str(guardian_id),
                    "--services", "emergency,location", "--age-band", "under14")
    assert out.returncode == 0, out.stderr
    assert f"for {token}: location,emergency (under14, by guardian {guardian_id})" in out.stdout

    out = childsafe(data_dir, "consent", "show", token)
    assert out.returncode == 0, out.stderr
    head, *rows = out.stdout.splitlines()
    assert head == f"{token}: tracked for routine,location,emergency"
    assert len(rows) == 2 and all(r.endswith("in force") for r in rows)
    assert "by seed" in rows[0] and f"by cli:{getpass.getuser()}" in rows[1]

    out = childsafe(data_dir, "consent", "withdraw", token)
    assert out.returncode == 0, out.stderr
    assert "consents 2 withdrawn; fixes 5 deleted, 2 kept for open alert 1" in out.stdout

    out = childsafe(data_dir, "consent", "withdraw", token)  # again: harmless
    assert out.returncode == 0, out.stderr
    assert "no consent was in force; fixes 0 deleted" in out.stdout

    out = childsafe(data_dir, "consent", "show", token)
    assert out.stdout.splitlines()[0] == f"{token}: not tracked (no consent in force)"
    assert sum("withdrawn" in r for r in out.stdout.splitlines()[1:]) == 2

    engine, sessions = open_store(sqlite_url(data_dir))
    with sessions() as s:
        assert s.scalar(select(func.count()).select_from(Fix)
                        .where(Fix.device_id == device)) == 2
        records = list(s.scalars(select(UsageRecord).order_by(UsageRecord.seq)))
        assert [(r.action, r.subject, r.actor) for r in records] == [
            ("consent", token, f"cli:{getpass.getuser()}"),
            ("withdrawal", token, f"cli:{getpass.getuser()}")]
        assert "mother@example.kr" not in records[0].detail
        assert db_consent.children_without_consent(s) == [token]
        assert db_consent.book(s).tracked(repo.roster(s)[1].child_id)  # the other child
    engine.dispose()

    out = childsafe(data_dir, "consent", "give", token, "--guardian", str(guardian_id),
                    "--services", "routine,location,emergency", "--age-band", "under14")
    assert out.returncode == 0, out.stderr
    assert childsafe(data_dir, "consent", "show", token).stdout.startswith(
        f"{token}: tracked for routine,location,emergency")
    out = childsafe(data_dir, "consent", "show", other)  # untouched throughout
    assert out.stdout.startswith(f"{other}: tracked for routine,location,emergency")


def test_bad_input_is_refused_with_a_reason_and_writes_nothing(data_dir: Path) -> None:
    token, other, _ = _store(data_dir)
    guardians, consents = _count(data_dir, Guardian), _count(data_dir, Consent)
    engine, sessions = open_store(sqlite_url(data_dir))
    with sessions() as s:
        [mine] = [str(g.id) for g in db_consent.guardians(s, token)]
        [theirs] = [str(g.id) for g in db_consent.guardians(s, other)]
    engine.dispose()
    refused = [
        (("consent", "give", token, "--services", "routine", "--age-band", "under14"),
         "under 14 needs a guardian"),
        (("consent", "give", token, "--guardian", mine, "--services", "routine,tracking",
          "--age-band", "under14"), "unknown tracking"),
        (("consent", "give", token, "--guardian", theirs, "--services", "routine",
          "--age-band", "under14"), f"guardian {theirs} does not answer for {token}"),
        (("consent", "give", token, "--guardian", "999", "--services", "routine",
          "--age-band", "under14"), "no guardian 999"),
        (("consent", "give", token, "--guardian", mine, "--services", "routine",
          "--age-band", "13"), "invalid choice"),
        (("consent", "withdraw", "C-NOPE"), "no child with token 'C-NOPE'"),
        (("guardians", "add", "--name", "x", "--phone", "010-abcd-1234"), "phone"),
        (("guardians", "add", "--name", "x", "--email", "not-an-address"), "email"),
        (("guardians", "add", "--name", "x", "--phone", "010-0000-1111", "--relation",
          "mother"), "--child"),
        (("guardians", "add", "--name", "x", "--phone", "010-0000-1111", "--child",
          "C-NOPE"), "no child"),
    ]
    for args, reason in refused:
        out = childsafe(data_dir, *args)
        assert out.returncode == 2, (args, out.stdout, out.stderr)
        assert reason in out.stderr, (args, out.stderr)
        assert out.stdout == ""
    assert (_count(data_dir, Guardian), _count(data_dir, Consent)) == (guardians, consents)
    assert _count(data_dir, UsageRecord) == 0
