"""The printable report of a training session: HTML for paper, CSV for Excel.

Trainers print one A4 page per trainee for the debrief and keep the CSV for
the training record, so the HTML is self-contained apart from the chart
PNGs written beside it (a folder can be copied or mailed as is), and the CSV
carries a byte-order mark: Excel on Korean Windows otherwise reads UTF-8 as
CP949 and mangles every name. Everything shown comes from
``models.scoring``; nothing is judged here, only laid out.

Charts are drawn with pyqtgraph and exported as PNG, which needs a
``QApplication``: the report makes an offscreen one when the process has
none (a command-line export runs without a display).
"""

from __future__ import annotations

import csv
import html
import os
import re
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pyqtgraph as pg
import pyqtgraph.exporters
from PySide6.QtCore import Qt
from PySide6.QtGui import QFont
from PySide6.QtWidgets import QApplication

from models.scenario import Population, Recording, Scenario
from models.scoring import Row, Totals, TraineeScore

# Drawn at this size and exported 1:1 (fonts keep their proportions); 180 mm
# wide on paper, ~200 dpi.
CHART_SIZE = (1400, 560)
CHART_FONT_PX = 18
# One bar per measure and incident, in this order; the colours survive a
# greyscale printer as three distinct greys.
CHART_MEASURES: tuple[tuple[str, str, str], ...] = (
    ("ack", "to acknowledge", "#1d4ed8"),
    ("cameras", "to open cameras", "#16a34a"),
    ("outcome", "to dispatch / resolve", "#c026d3"),
)
BAR_WIDTH = 0.24
STATUS_TEXT = {"pass": "PASS", "fail": "FAIL", "missed": "MISSED", "other": "worked by",
               "not_run": "not run"}
INCIDENT_TEXT = {"passed": "passed", "failed": "failed", "missed": "MISSED",
                 "worked_by": "worked by others", "not_run": "not run"}
INCIDENT_CLASS = {"passed": "pass", "failed": "fail", "missed": "missed",
                  "worked_by": "other", "not_run": "not_run"}
# Excel runs a cell starting with one of these as a formula (CSV injection).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")

CSV_COLUMNS = (
    "row", "session", "scenario", "trainee", "incident", "kind", "alert_id", "measure",
    "expected", "deadline_s", "seconds", "status", "by", "reason", "steps_done",
    "steps_required", "ack_mean_s", "ack_worst_s", "cameras_mean_s", "cameras_worst_s",
    "dispatch_mean_s", "dispatch_worst_s", "outcomes_correct", "outcomes_expected",
    "missed_incidents", "worked_by_others", "rows_passed", "rows_scored", "percent",
)

_app: QApplication | None = None  # the one this module made, kept alive


@dataclass(frozen=True, slots=True)
class ReportFiles:
    html: Path
    csv: Path
    images: list[Path]


def write_report(scores: Sequence[TraineeScore], scenario: Scenario, out_dir: Path,
                 session_label: str, *, when: datetime | None = None) -> ReportFiles:
    """Write the HTML, the CSV and one chart per trainee into ``out_dir``.

    File names start with the scenario id and the session label (made safe),
    so several sessions' reports can share a folder. ``when`` is the date on
    the header (default: now, local time).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    when = when or datetime.now().astimezone()
    stem = f"training-{scenario.id}-{_slug(session_label)}"
    images = [_chart(score, scenario, out_dir / f"{stem}-trainee{n}.png")
              for n, score in enumerate(scores, 1)]
    csv_path = out_dir / f"{stem}.csv"
    _write_csv(csv_path, scores, scenario, session_label)
    html_path = out_dir / f"{stem}.html"
    html_path.write_text(_html(scores, scenario, session_label, when, images),
                         encoding="utf-8")
    return ReportFiles(html_path, csv_path, images)


def _slug(text: str) -> str:
    """A file-name-safe form of a free-text label."""
    slug = re.sub(r"[^A-Za-z0-9_-]+", "-", text).strip("-")[:40]
    return slug or "session"


def _num(v: float | int | None) -> str:
    """Seconds as people read them: 12, 12.5; "" for none."""
    if v is None:
        return ""
    return f"{v:.0f}" if float(v).is_integer() else f"{v:.1f}"


# ------------------------------------------------------------------ CSV


def _cell(value: object) -> str:
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def _write_csv(path: Path, scores: Sequence[TraineeScore], scenario: Scenario,
               session: str) -> None:
    """One row per trainee and expected response, then the trainee's totals row."""
    kinds = {i.id: i.kind for i in scenario.incidents}
    with path.open("w", encoding="utf-8-sig", newline="") as f:
        out = csv.DictWriter(f, fieldnames=CSV_COLUMNS)
        out.writeheader()
        for score in scores:
            common = {"session": session, "scenario": scenario.id, "trainee": score.trainee}
            for row in score.rows:
                out.writerow(_csv_cells({**common, **_response_cells(row, kinds)}))
            out.writerow(_csv_cells({**common, "row": "total", **_total_cells(score.totals)}))


def _csv_cells(cells: dict[str, object]) -> dict[str, str]:
    return {k: _cell(cells.get(k)) for k in CSV_COLUMNS}


def _response_cells(row: Row, kinds: dict[str, str]) -> dict[str, object]:
    steps = row.measure == "steps"
    return {"row": "response", "incident": row.incident, "kind": kinds.get(row.incident, ""),
            "alert_id": row.alert_id, "measure": row.measure, "expected": row.expected,
            "deadline_s": _num(row.deadline_s), "seconds": _num(row.seconds),
            "status": row.status, "by": row.by, "reason": row.reason,
            "steps_done": row.done if steps else None,
            "steps_required": row.required if steps else None}


def _total_cells(t: Totals) -> dict[str, object]:
    return {"ack_mean_s": _num(t.ack_mean_s), "ack_worst_s": _num(t.ack_worst_s),
            "cameras_mean_s": _num(t.cameras_mean_s),
            "cameras_worst_s": _num(t.cameras_worst_s), "steps_done": t.steps_done,
            "steps_required": t.steps_required, "dispatch_mean_s": _num(t.dispatch_mean_s),
            "dispatch_worst_s": _num(t.dispatch_worst_s),
            "outcomes_correct": t.outcomes_correct, "outcomes_expected": t.outcomes_expected,
            "missed_incidents": ";".join(t.missed),
            "worked_by_others": ";".join(t.worked_by_others), "rows_passed": t.rows_passed,
            "rows_scored": t.rows_scored, "percent": _num(t.percent)}


# ------------------------------------------------------------------ charts


def _ensure_app() -> QApplication:
    """The process's QApplication, or a new offscreen one (kept for reuse)."""
    global _app
    app = QApplication.instance()
    if app is None:
        argv = [sys.argv[0] if sys.argv and sys.argv[0] else "childsafe"]
        if not os.environ.get("QT_QPA_PLATFORM"):
            argv += ["-platform", "offscreen"]  # a report needs no screen
        app = _app = QApplication(argv)
    if not isinstance(app, QApplication):
        raise RuntimeError("the training report draws charts with widgets: this process "
                           f"has a {type(app).__name__}, not a QApplication")
    return app


def _chart(score: TraineeScore, scenario: Scenario, path: Path) -> Path:
    """Seconds to acknowledge, open cameras and dispatch/resolve per incident,
    with each deadline as a dashed line over its bar."""
    _ensure_app()
    incidents = [e.incident for e in scenario.expects
                 if any(getattr(e, f) is not None for f in
                        ("ack_within_s", "cameras_within_s", "outcome"))]
    widget = pg.PlotWidget(background="w")
    try:
        # Laid out only once shown: shown off screen, never on a desktop.
        widget.setAttribute(Qt.WidgetAttribute.WA_DontShowOnScreen, True)
        widget.resize(*CHART_SIZE)
        widget.show()
        plot = widget.getPlotItem()
        _style(plot, incidents, score.trainee)
        top = max([*_bars(plot, score, incidents), *_deadlines(plot, score, incidents), 1.0])
        plot.setXRange(-0.6, max(len(incidents), 1) - 0.4, padding=0)
        plot.setYRange(0, top * 1.3, padding=0)  # from zero; headroom for the legend
        QApplication.processEvents()
        exporter = pg.exporters.ImageExporter(plot)
        exporter.parameters()["width"] = CHART_SIZE[0]
        exporter.export(str(path))
    finally:
        widget.close()
        widget.deleteLater()
    return path


def _style(plot: pg.PlotItem, incidents: list[str], trainee: str) -> None:
    ink = pg.mkPen("#111827")
    font = QFont()
    font.setPixelSize(CHART_FONT_PX)
    for name in ("left", "bottom"):
        axis = plot.getAxis(name)
        axis.setPen(ink)
        axis.setTextPen(ink)
        axis.setStyle(tickFont=font)
    size = f"{CHART_FONT_PX}px"
    # Qt reads the title as rich text: a name like "<b>" must stay text
    plot.setTitle(f"Seconds from each incident: {html.escape(trainee)}", color="#111827",
                  size=f"{CHART_FONT_PX + 4}px")
    plot.setLabel("left", "seconds from the incident", **{"color": "#111827",
                                                           "font-size": size})
    plot.getAxis("bottom").setHeight(CHART_FONT_PX * 2 + 8)  # room for the larger ticks
    plot.getAxis("bottom").setTicks([[(i, name) for i, name in enumerate(incidents)]])
    plot.showGrid(y=True, alpha=0.25)
    plot.setMouseEnabled(x=False, y=False)
    legend = plot.addLegend(offset=(10, 10), labelTextColor="#111827", labelTextSize=size,
                            brush=pg.mkBrush(255, 255, 255, 230), pen=ink)
    legend.setColumnCount(2)


def _offset(k: int) -> float:
    return (k - (len(CHART_MEASURES) - 1) / 2) * BAR_WIDTH * 1.1


def _own(score: TraineeScore, incident: str, measure: str) -> Row | None:
    """The trainee's own row for one measure (pass or fail: they did it)."""
    return next((r for r in score.rows if r.incident == incident and r.measure == measure
                 and r.status in ("pass", "fail")), None)


def _bars(plot: pg.PlotItem, score: TraineeScore, incidents: list[str]) -> list[float]:
    """Draw the trainee's own times; returns their heights."""
    drawn: list[float] = []
    for k, (measure, label, colour) in enumerate(CHART_MEASURES):
        xs: list[float] = []
        heights: list[float] = []
        for i, incident in enumerate(incidents):
            row = _own(score, incident, measure)
            if row is not None and row.seconds is not None:
                xs.append(i + _offset(k))
                heights.append(row.seconds)
        bars = pg.BarGraphItem(x=xs, height=heights, width=BAR_WIDTH, brush=colour,
                               pen=pg.mkPen("#111827", width=1))
        plot.addItem(bars)
        plot.legend.addItem(bars, label)
        drawn += heights
    return drawn


def _deadlines(plot: pg.PlotItem, score: TraineeScore, incidents: list[str]
               ) -> list[float]:
    """Draw each deadline over its bar's place; returns them."""
    xs: list[float] = []
    ys: list[float] = []
    for k, (measure, _, _) in enumerate(CHART_MEASURES):
        for i, incident in enumerate(incidents):
            row = next((r for r in score.rows if r.incident == incident
                        and r.measure == measure), None)
            if row is not None and row.deadline_s is not None:
                x = i + _offset(k)
                xs += [x - BAR_WIDTH * 0.6, x + BAR_WIDTH * 0.6]
                ys += [row.deadline_s, row.deadline_s]
    line = pg.PlotDataItem(xs, ys, connect="pairs", name="deadline",
                           pen=pg.mkPen("#dc2626", width=3, style=Qt.PenStyle.DashLine))
    plot.addItem(line)
    return ys


# ------------------------------------------------------------------ HTML

_CSS = """
@page { size: A4; margin: 14mm 12mm; }
* { box-sizing: border-box; }
body { font-family: "Noto Sans KR", "Malgun Gothic", "Apple SD Gothic Neo", sans-serif;
       font-size: 10pt; color: #111; margin: 0; }
h1 { font-size: 16pt; margin: 0 0 4mm; }
h2 { font-size: 12pt; margin: 5mm 0 2mm; }
.page { break-after: page; page-break-after: always; }
.page:last-child { break-after: auto; page-break-after: auto; }
table { border-collapse: collapse; width: 100%; margin-bottom: 3mm; }
th, td { border: 1px solid #9ca3af; padding: 1.2mm 1.6mm; text-align: left;
         vertical-align: top; }
th { background: #f3f4f6; }
thead { display: table-header-group; }
tr, img { break-inside: avoid; page-break-inside: avoid; }
td.num { text-align: right; white-space: nowrap; }
table.head th { width: 28%; }
.pass { color: #14532d; font-weight: bold; }
.fail, .missed { color: #991b1b; font-weight: bold; }
.other, .not_run { color: #4b5563; }
.description { white-space: pre-line; }
img.chart { width: 100%; max-width: 186mm; display: block; margin-top: 2mm; }
@media screen {
  body { max-width: 210mm; margin: 8mm auto; padding: 0 6mm; }
  .page { border-bottom: 2px dashed #d1d5db; padding-bottom: 8mm; margin-bottom: 8mm; }
}
@media print {
  .page { border: 0; margin: 0; padding: 0; }
  th { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
}
"""


def _e(value: object) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _html(scores: Sequence[TraineeScore], scenario: Scenario, session: str, when: datetime,
          images: list[Path]) -> str:
    date = when.strftime("%Y-%m-%d %H:%M")
    pages = [_summary_page(scores, scenario, session, date)]
    pages += [_trainee_page(s, scenario, session, date, img) for s, img in zip(scores, images,
                                                                                strict=True)]
    title = f"Training report: {scenario.title}, {session}"
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<title>{_e(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
            + "\n".join(pages) + "\n</body>\n</html>\n")


def _table(head: Iterable[str], rows: Iterable[Iterable[str]], cls: str = "") -> str:
    """A table; cells are HTML already escaped by the caller."""
    th = "".join(f"<th>{_e(h)}</th>" for h in head)
    body = "\n".join("<tr>" + "".join(cells) + "</tr>" for cells in rows)
    attr = f' class="{_e(cls)}"' if cls else ""
    return f"<table{attr}>\n<thead><tr>{th}</tr></thead>\n<tbody>\n{body}\n</tbody>\n</table>"


def _td(text: object, cls: str = "") -> str:
    attr = f' class="{_e(cls)}"' if cls else ""
    return f"<td{attr}>{_e(text)}</td>"


def _base_text(scenario: Scenario) -> str:
    base = scenario.base
    if isinstance(base, Population):
        return f"simulated: {base.children} children in {', '.join(base.zones)} (seed {base.seed})"
    assert isinstance(base, Recording)
    return f"recording {base.start.isoformat()} to {base.end.isoformat()}"


def _header(scenario: Scenario, session: str, date: str, trainee: str | None) -> str:
    rows = [("Scenario", f"{scenario.title} ({scenario.id})"), ("Site", scenario.site),
            ("Based on", _base_text(scenario)),
            ("Length", f"{_num(scenario.duration_s)} s ({scenario.duration_s / 60:.0f} min)"),
            ("Session", session), ("Date", date)]
    if trainee is not None:
        rows.insert(0, ("Trainee", trainee))
    body = "\n".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in rows)
    return f'<table class="head">\n{body}\n</table>'


def _percent(t: Totals) -> str:
    if t.percent is None:
        return "nothing of theirs to score"
    return f"{_num(t.percent)} % ({t.rows_passed} of {t.rows_scored} responses passed)"


def _summary_page(scores: Sequence[TraineeScore], scenario: Scenario, session: str,
                  date: str) -> str:
    rows = [[_td(s.trainee), _td(_percent(s.totals)), _td(", ".join(s.totals.missed) or "none"),
             _td(", ".join(s.totals.worked_by_others) or "none")] for s in scores]
    table = _table(("Trainee", "Overall", "Missed incidents", "Worked by others"), rows)
    return ('<section class="page summary">\n'
            f"<h1>Training report: {_e(scenario.title)}</h1>\n"
            f"{_header(scenario, session, date, None)}\n"
            f'<p class="description">{_e(scenario.description)}</p>\n'
            f"<h2>Trainees</h2>\n{table}\n</section>")


def _pair(mean: float | None, worst: float | None) -> str:
    if mean is None:
        return "none done"
    return f"mean {_num(mean)} s, worst {_num(worst)} s"


def _totals_table(t: Totals) -> str:
    rows = [("Overall", _percent(t)),
            ("Time to acknowledge", _pair(t.ack_mean_s, t.ack_worst_s)),
            ("Time to open cameras", _pair(t.cameras_mean_s, t.cameras_worst_s)),
            ("SOP steps done", f"{t.steps_done} of {t.steps_required}"),
            ("Time to dispatch", _pair(t.dispatch_mean_s, t.dispatch_worst_s)),
            ("Correct outcomes", f"{t.outcomes_correct} of {t.outcomes_expected}"),
            ("Missed incidents", ", ".join(t.missed) or "none"),
            ("Worked by others", ", ".join(t.worked_by_others) or "none")]
    body = "\n".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in rows)
    return f'<table class="head">\n{body}\n</table>'


def _status(row: Row) -> str:
    text = STATUS_TEXT[row.status]
    return f"{text} {row.by}" if row.status == "other" else text


def _trainee_page(score: TraineeScore, scenario: Scenario, session: str, date: str,
                  image: Path) -> str:
    kinds = {i.id: i.kind for i in scenario.incidents}
    incidents = _table(("Incident", "Kind", "Alert", "Verdict", "Why"), (
        [_td(i.incident), _td(i.kind), _td(i.alert_id if i.alert_id is not None else "none"),
         _td(INCIDENT_TEXT[i.status], INCIDENT_CLASS[i.status]), _td(i.reason)]
        for i in score.incidents))
    responses = _table(("Incident", "Response", "Expected", "Seconds", "Deadline", "Result",
                        "Why"), (
        [_td(f"{r.incident} ({kinds.get(r.incident, '')})"), _td(r.measure), _td(r.expected),
         _td(_num(r.seconds), "num"), _td(_num(r.deadline_s) or "end", "num"),
         _td(_status(r), r.status), _td(r.reason)]
        for r in score.rows))
    alt = (f"Bar chart of {score.trainee}'s seconds to acknowledge, to open cameras and "
           "to dispatch or resolve, per incident, with the deadlines")
    return ('<section class="page trainee">\n'
            f"<h1>{_e(score.trainee)}: {_e(scenario.title)}</h1>\n"
            f"{_header(scenario, session, date, score.trainee)}\n"
            f"<h2>Totals</h2>\n{_totals_table(score.totals)}\n"
            f"<h2>Incidents</h2>\n{incidents}\n"
            f"<h2>Expected responses</h2>\n{responses}\n"
            "<h2>Times</h2>\n"
            f'<img class="chart" src="{_e(image.name)}" alt="{_e(alt)}">\n'
            "</section>")
