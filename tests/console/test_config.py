"""Settings are checked by type and range when they are loaded, and the
error names the key: ``osmand_port = "abc"`` used to be accepted and kill
the gateway on every restart."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from console.config import Config

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(("setting", "says"), [
    ({"osmand_port": "abc"}, "osmand_port: Expected `int`, got `str`"),
    ({"relay_port": 70000}, "relay_port: a port is 1 to 65535"),
    ({"sim_interval_s": -1}, "sim_interval_s: must be zero or more"),
    ({"sim_interval_s": float("nan")}, "sim_interval_s: must be zero or more"),
    ({"children": "many"}, "children: Expected `int | null`"),
    ({"sim_phone_forms": {"get": "half"}}, "sim_phone_forms: Expected `float`"),
    ({"alert_priorities": {"sos": True}}, "alert_priorities: Expected `int`, got `bool`"),
    ({"alert_priorities": {"sos": 7}}, "alert_priorities.sos: a priority is 1 to 4"),
    ({"alert_sla": {"P1": [600, 30]}}, "alert_sla.P1"),
    ({"alert_sla": {"P9": [1, 2]}}, "alert_sla: 'P9' is not P1..P4"),
    ({"bogus": 1}, "unknown setting(s): bogus"),
])
def test_a_bad_setting_is_refused_naming_its_key(setting: dict[str, object],
                                                  says: str) -> None:
    with pytest.raises(ValueError) as exc:
        Config.from_mapping(setting)
    assert says in str(exc.value)


def test_good_settings_are_converted() -> None:
    c = Config.from_mapping({"sim_interval_s": 3, "watch_utc_offset_s": -18000,
                             "sim_phone_forms": {"get": 1, "form": 0, "json": 0},
                             "alert_sla": {"P1": [20, 300]}, "data_dir": "/tmp/cs-conf"})
    assert c.sim_interval_s == 3.0 and isinstance(c.sim_interval_s, float)
    assert c.watch_utc_offset_s == -18000.0  # west of UTC
    assert c.alert_sla == {"P1": [20.0, 300.0]} and c.data_dir == Path("/tmp/cs-conf")


def test_serve_stops_at_once_with_the_reason(tmp_path: Path) -> None:
    conf = tmp_path / "bad.toml"
    conf.write_text('osmand_port = "abc"\n', encoding="utf-8")
    done = subprocess.run([sys.executable, "-m", "console", "serve", "--config", str(conf),
                           "--data-dir", str(tmp_path / "d")], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 2
    assert "osmand_port: Expected `int`, got `str`" in done.stderr
