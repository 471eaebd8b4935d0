"""Registering and unregistering devices, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from db import repositories as repo
from db.registry import RegistryError, add_device, remove_device, unregistered
from db.seed import seed_demo
from db.store import open_store


def test_add_and_remove_device(store_url: str) -> None:
    engine, sessions = open_store(store_url)
    with sessions() as s:
        seed_demo(s, 3)
        token = repo.roster(s)[0].token
        repo.record_unregistered(s, {"W-1": ("watch", 1.0, 2.0, 5)})
        s.commit()
        assert [u.id for u in unregistered(s)] == ["W-1"]
        add_device(s, "W-1", "watch", token)
        s.commit()
        assert "W-1" in repo.registered_device_ids(s)
        assert unregistered(s) == []  # registering clears it from the admin's list
        for bad in [("W-1", "watch", token), ("W-2", "pager", token), ("W-3", "tag", "C-NOPE"),
                    ("", "tag", token)]:
            with pytest.raises(RegistryError):
                add_device(s, *bad)
        s.rollback()
        remove_device(s, "W-1")
        s.commit()
        assert "W-1" not in repo.registered_device_ids(s)
        with pytest.raises(RegistryError, match="no device"):
            remove_device(s, "W-1")
    engine.dispose()
