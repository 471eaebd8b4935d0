"""Migration 0010 on SQLite and PostgreSQL: device holdings are filled from
what a store at 0009 knows (registrations, and devices the children's
alerts name), so a withdrawal after the upgrade finds the same devices it
found before, and no device another child holds now over that child's time."""

from __future__ import annotations

import math
import time

from alembic import command
from alembic.config import Config
from sqlalchemy import inspect, select

from db import holdings
from db.store import MIGRATIONS, make_engine, session_factory, upgrade
from db.tables import Alert, Child, Device, DeviceHolding


def _alert(child_id: int, device_id: str) -> Alert:
    return Alert(kind="sos", priority=1, state="resolved", child_id=child_id,
                 device_id=device_id, lat=37.5, lon=127.0, place="성동구", zone="",
                 position_is_last_known=False, opened_at=50.0)


def test_holdings_are_filled_from_registrations_and_alerts(store_url: str) -> None:
    upgrade(store_url, "0009")
    engine = make_engine(store_url)
    sessions = session_factory(engine)
    with sessions() as s:
        s.add_all([Child(id=i, token=f"C-000000{i}", name=f"아이{i}", zone_id=None)
                   for i in (1, 2, 3)])
        s.flush()
        s.add_all([Device(id="w1", kind="watch", child_id=1, registered_at=100.0),
                   Device(id="w2", kind="watch", child_id=2, registered_at=200.0)])
        # w1 is child 1's own; w2 was child 1's before child 2 got it; "gone"
        # was child 3's and is registered to nobody now
        s.add_all([_alert(1, "w1"), _alert(1, "w2"), _alert(3, "gone"), _alert(3, "gone")])
        s.commit()
    before = time.time()
    upgrade(store_url)
    with sessions() as s:
        rows = sorted((h.device_id, h.child_id, h.since, h.until)
                      for h in s.scalars(select(DeviceHolding)))
        (gone,) = [r for r in rows if r[0] == "gone"]
        assert gone[:3] == ("gone", 3, 0.0) and gone[3] is not None and gone[3] >= before
        assert [r for r in rows if r[0] != "gone"] == [
            ("w1", 1, 100.0, None), ("w2", 1, 0.0, 200.0), ("w2", 2, 200.0, None)]
        assert holdings.spans_of(s, [1]) == {"w1": [holdings.WHOLE],
                                             "w2": [(-math.inf, 200.0)]}
        assert holdings.spans_of(s, [2]) == {"w2": [(200.0, math.inf)]}
        assert holdings.spans_of(s, [3]) == {"gone": [holdings.WHOLE]}
        assert holdings.spans_of(s, [1, 2])["w2"] == [holdings.WHOLE]  # theirs all along

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", store_url)
    command.downgrade(cfg, "0009")
    assert "device_holdings" not in inspect(engine).get_table_names()
    upgrade(store_url)  # and up again, filled the same way
    with sessions() as s:
        assert len(list(s.scalars(select(DeviceHolding)))) == 4
    engine.dispose()
