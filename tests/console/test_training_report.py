"""The printable training report (``console.training_report``), written for real:
the CSV read back as Excel would, the HTML's images loaded with Qt."""

from __future__ import annotations

import csv
import html
import os
import re
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from PySide6.QtGui import QImage

from console.training_report import CSV_COLUMNS, write_report
from models.messages import AlertView, HistoryEntry
from models.scenario import Scenario, load_scenario
from models.scoring import Injected, TraineeScore, score

T0 = 1_222_815_600.0
KIM = "김<민서> & co"  # escaping must keep a name like this text
LEE = "=lee"  # a name Excel would run as a formula
SESSION = "Morning <1> & 2"
WHEN = datetime(2008, 10, 1, 9, 30, tzinfo=timezone(timedelta(hours=9)))

SCENARIO = """
title = "Report <test>"
description = "Two SOSes & a note."
site = "Sindorim Elementary"
duration_s = 900
[population]
children = 400
seed = 1
zones = ["Sindorim Elementary"]

[[incident]]
id = "sos1"
at_s = 100
kind = "sos"
child = 120

[[incident]]
id = "again"
at_s = 140
kind = "second_sos"
of = "sos1"

[[incident]]
id = "sos2"
at_s = 300
kind = "sos"
child = 41

[[expect]]
incident = "sos1"
ack_within_s = 30
cameras_within_s = 60
steps = ["cctv", "call_device", "call_guardian", "decide_dispatch"]
outcome = "dispatched"
dispatch_to = "police"
outcome_within_s = 300

[[expect]]
incident = "again"
noted_within_s = 90

[[expect]]
incident = "sos2"
ack_within_s = 30
cameras_within_s = 60
outcome = "false_alarm"
outcome_within_s = 400
"""


def line(action: str, actor: str, offset: float, note: str = "", detail: str = ""
         ) -> HistoryEntry:
    return HistoryEntry(action, actor, T0 + offset, note, detail)


def alert(alert_id: int, device: str, opened: float) -> AlertView:
    return AlertView(id=alert_id, kind="sos", priority=1, state="new", child_token="C-1",
                     child_slot=alert_id, device_id=device, lat=37.5085, lon=126.8875,
                     place="구로구 신도림동", opened_at=T0 + opened)


@pytest.fixture
def scored(tmp_path: Path) -> tuple[Scenario, list[TraineeScore]]:
    """Kim works the first SOS (dispatch, late cameras); Lee the second, wrongly."""
    path = tmp_path / "report-test.toml"
    path.write_text(SCENARIO, encoding="utf-8")
    scenario = load_scenario(path)
    injected = [Injected("sos1", "sos", T0 + 100, "881"),
                Injected("again", "second_sos", T0 + 140, "881"),
                Injected("sos2", "sos", T0 + 300, "882")]
    alerts = [alert(1, "881", 100.5), alert(2, "882", 300.2)]
    histories = {
        1: [line("ack", KIM, 110), line("cameras", KIM, 190, detail="9,11"),
            *[line("step", KIM, 200 + n, detail=f"{s} done") for n, s in
              enumerate(["cctv", "call_device", "call_guardian", "decide_dispatch"])],
            line("note", KIM, 160, note="second press: still with the stranger"),
            line("dispatch", KIM, 250, note="stranger", detail="police 112 ref 1")],
        2: [line("ack", LEE, 320), line("cameras", LEE, 330, detail="12"),
            line("dispatch", LEE, 400, note="unsure", detail="police 112 ref 2")],
    }
    return scenario, [score(scenario, injected, alerts, histories, name) for name in (KIM, LEE)]


def test_the_csv_has_a_row_per_response_and_a_total_per_trainee(
        tmp_path: Path, scored: tuple[Scenario, list[TraineeScore]]) -> None:
    scenario, scores = scored
    files = write_report(scores, scenario, tmp_path / "out", SESSION, when=WHEN)
    raw = files.csv.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")  # the BOM Excel needs to read UTF-8
    with files.csv.open(encoding="utf-8-sig", newline="") as f:
        rows = list(csv.DictReader(f))
    assert tuple(rows[0].keys()) == CSV_COLUMNS
    kim = [r for r in rows if r["trainee"] == KIM]
    lee = [r for r in rows if r["trainee"] == "'=lee"]  # defused for Excel
    assert len(kim) + len(lee) == len(rows)
    for trainee_rows, s in ((kim, scores[0]), (lee, scores[1])):
        assert [r["row"] for r in trainee_rows] == ["response"] * len(s.rows) + ["total"]
        assert [(r["incident"], r["measure"]) for r in trainee_rows[:-1]] == [
            (x.incident, x.measure) for x in s.rows]
        assert {r["session"] for r in trainee_rows} == {SESSION}
    by_key = {(r["incident"], r["measure"]): r for r in kim[:-1]}
    assert (by_key[("sos1", "ack")]["seconds"], by_key[("sos1", "ack")]["status"]) == ("10",
                                                                                       "pass")
    cams = by_key[("sos1", "cameras")]
    assert (cams["seconds"], cams["deadline_s"], cams["status"]) == ("90", "60", "fail")
    assert by_key[("sos1", "steps")]["steps_done"] == "4"
    assert by_key[("sos2", "ack")]["status"] == "other"
    assert kim[-1]["percent"] == "80" and kim[-1]["worked_by_others"] == "sos2"
    assert lee[-1]["worked_by_others"] == "again;sos1"
    assert lee[-1]["outcomes_correct"] == "0" and lee[-1]["outcomes_expected"] == "1"
    assert [r["status"] for r in lee[:-1] if r["incident"] == "sos2"] == ["pass", "pass",
                                                                          "fail"]


def test_the_html_escapes_names_and_shows_valid_charts(
        tmp_path: Path, scored: tuple[Scenario, list[TraineeScore]]) -> None:
    scenario, scores = scored
    files = write_report(scores, scenario, tmp_path, SESSION, when=WHEN)
    page = files.html.read_text(encoding="utf-8")
    assert html.escape(KIM) in page and KIM not in page
    assert html.escape(SESSION) in page and SESSION not in page
    assert "Report &lt;test&gt;" in page and "2008-10-01 09:30" in page
    assert page.count('<section class="page trainee">') == 2
    assert "@media print" in page and "size: A4" in page
    sources = re.findall(r'<img class="chart" src="([^"]+)"', page)
    assert len(sources) == 2
    assert [tmp_path / s for s in sources] == files.images
    for image in files.images:
        assert image.is_file() and image.parent == files.html.parent
        _assert_a_real_picture(image)


def _assert_a_real_picture(path: Path) -> None:
    img = QImage(str(path))
    assert not img.isNull(), path
    assert img.width() >= 800 and img.height() >= 300
    colours = {img.pixel(x, y) for x in range(0, img.width(), 7)
               for y in range(0, img.height(), 7)}
    assert len(colours) > 3, f"{path.name} is blank"


def test_a_report_with_no_trainee_work_still_draws(
        tmp_path: Path, scored: tuple[Scenario, list[TraineeScore]]) -> None:
    scenario = scored[0]
    idle = score(scenario, [], [], {}, "idle")  # nothing injected, nothing done
    files = write_report([idle], scenario, tmp_path, "", when=WHEN)
    assert files.html.name == "training-report-test-session.html"
    _assert_a_real_picture(files.images[0])
    assert "nothing of theirs to score" in files.html.read_text(encoding="utf-8")


def test_a_process_without_a_qapplication_gets_an_offscreen_one(
        tmp_path: Path, scored: tuple[Scenario, list[TraineeScore]]) -> None:
    """A command-line export: no QApplication, no display, no QT_QPA_PLATFORM."""
    scenario = scored[0]
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from PySide6.QtWidgets import QApplication\n"
        "from console.training_report import write_report\n"
        "from models.scenario import load_scenario\n"
        "from models.scoring import score\n"
        "assert QApplication.instance() is None\n"
        "s = load_scenario(Path(sys.argv[1]))\n"
        "files = write_report([score(s, [], [], {}, 'a')], s, Path(sys.argv[2]), 'cli')\n"
        "print(QApplication.instance().platformName(), files.images[0].stat().st_size)\n"
    )
    env = {k: v for k, v in os.environ.items()
           if k not in ("QT_QPA_PLATFORM", "DISPLAY", "WAYLAND_DISPLAY")}
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, "-c", code, str(scenario.source), str(tmp_path)],
                         cwd=root, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    platform, size = out.stdout.split()
    assert platform == "offscreen" and int(size) > 1000
