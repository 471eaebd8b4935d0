"""``childsafe children …`` and ``childsafe import roster``, called in-process
with the Namespace argparse builds, on a fresh SQLite store in a data dir:
what the admin reads, and what the store then holds."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from console.cli_children import (
    cmd_children_add,
    cmd_children_list,
    cmd_children_remove,
    cmd_import_roster,
)
from db import changes
from db.seed import seed_demo
from db.store import open_store, sqlite_url
from db.tables import Alert, Child, Device, Guardian

SCHOOL = "Sindorim Elementary"
HEADER = ("name,device_id,device_kind,guardian_name,guardian_phone,guardian_email,relation,"
          "consent,age_band")


@pytest.fixture
def store(data_dir: Path) -> Iterator[Path]:
    """A data dir whose store has the demo's zones and three children."""
    engine, sessions = open_store(sqlite_url(data_dir))
    with sessions() as s:
        seed_demo(s, 3)
    engine.dispose()
    yield data_dir


def _args(data_dir: Path, **kw: object) -> argparse.Namespace:
    return argparse.Namespace(data_dir=data_dir, config=None, db=None, verbose=False, **kw)


def _count(data_dir: Path, table: type[object]) -> int:
    engine, sessions = open_store(sqlite_url(data_dir))
    try:
        with sessions() as s:
            return int(s.scalar(select(func.count()).select_from(table)) or 0)  # type: ignore
    finally:
        engine.dispose()


def test_add_list_remove(store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cmd_children_add(_args(store, name="박하늘", school=SCHOOL, profile="bus")) == 0
    token = capsys.readouterr().out.strip()
    assert token.startswith("C-") and len(token) == 9
    assert cmd_children_list(_args(store, removed=False)) == 0
    lines = [line.split("\t") for line in capsys.readouterr().out.splitlines()]
    assert len(lines) == 4
    assert lines[-1] == [token, "박하늘", SCHOOL, "bus", "-", "-", "no consent"]
    seeded = lines[0]
    assert seeded[0].startswith("C-") and seeded[-1] == "routine,location,emergency"
    assert seeded[4].endswith(("watch", "phone", "tag")) and seeded[5].endswith(":parent")

    device = seeded[4].split(":")[0]
    assert cmd_children_remove(_args(store, token=seeded[0])) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"removed {seeded[0]}: devices unregistered: {device};")
    assert _count(store, Device) == 2
    cmd_children_list(_args(store, removed=False))
    assert seeded[0] not in capsys.readouterr().out
    cmd_children_list(_args(store, removed=True))
    [removed] = [line for line in capsys.readouterr().out.splitlines()
                 if line.startswith(seeded[0])]
    assert "\tremoved 20" in removed
    engine, sessions = open_store(sqlite_url(store))
    with sessions() as s:
        assert changes.history(s, "roster", token)[0].actor.startswith("cli:")
    engine.dispose()


def test_remove_with_an_open_alert_is_refused(store: Path) -> None:
    engine, sessions = open_store(sqlite_url(store))
    with sessions() as s:
        child = s.scalars(select(Child).order_by(Child.id)).first()
        assert child is not None
        s.add(Alert(kind="sos", priority=1, state="new", child_id=child.id, device_id="x",
                    lat=None, lon=None, place="", opened_at=1.0))
        s.commit()
        token = child.token
    engine.dispose()
    with pytest.raises(ValueError, match="resolve the case first"):
        cmd_children_remove(_args(store, token=token))
    assert _count(store, Device) == 3


def test_import_roster(store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = tmp_path / "roster.csv"
    good.write_bytes(("\ufeff" + "\r\n".join([
        HEADER,
        '"김, 하나",8850000001,watch,김영희,010-1111-2222,,mother,"routine,location",under14',
        "김두리,8850000002,watch,김영희,010-1111-2222,,mother,location,under14",
    ]) + "\r\n").encode())
    assert cmd_import_roster(_args(store, file=good, school=SCHOOL)) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split("\t")[1:] == ["line 2", "김, 하나", "8850000001"]
    assert out[0].startswith("C-") and out[1].split("\t")[1] == "line 3"
    assert out[-1] == ("imported 2 children with their devices and consent; "
                       "guardians: 1 new, 0 already known")
    assert (_count(store, Child), _count(store, Guardian)) == (5, 4)

    bad = tmp_path / "bad.csv"
    bad.write_text("\n".join([
        HEADER,
        "박셋,8850000001,watch,박부모,010-3333-4444,,father,location,under14",  # again
        "박넷,8850000004,pager,박부모,010-3333-4444,,father,location,under14",
        "박다섯,8850000005,watch,,,,,location,under14",
        "박여섯,8850000006,watch,박부모,010-3333-4444,,father,location,under14",
    ]) + "\n", encoding="utf-8")
    assert cmd_import_roster(_args(store, file=bad, school=SCHOOL)) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    err = captured.err.splitlines()
    assert err == [
        f"{bad}: line 2: device_id: 8850000001 is already registered",
        f"{bad}: line 3: device_kind: must be one of watch, phone, tag, not 'pager'",
        f"{bad}: line 4: consent: guardian: a child under 14 needs a guardian's consent "
        "(Location Information Act §25)",
        "nothing imported: 3 problems",
    ]
    assert (_count(store, Child), _count(store, Guardian)) == (5, 4)  # not even line 5

    assert cmd_import_roster(_args(store, file=good, school="Nowhere")) == 2
    assert "no zone named 'Nowhere'" in capsys.readouterr().err
    latin = tmp_path / "cp949.csv"
    latin.write_bytes(HEADER.encode() + "\n박,1,watch".encode("cp949"))
    assert cmd_import_roster(_args(store, file=latin, school=SCHOOL)) == 2
    assert "not UTF-8" in capsys.readouterr().err
    assert cmd_import_roster(_args(store, file=tmp_path / "missing.csv", school=None)) == 2
    assert "cannot read" in capsys.readouterr().err
