"""The shift's KPI charts for the supervisor's panel, drawn with pyqtgraph.

Five small plots, numbers first: how long acknowledging and closing took
(histograms), alerts per hour stacked by kind, alerts by district, and the
share of alerts acknowledged in time per priority, with the target line.
The overall SLA figure sits above them as a label whose ``level`` property
(good / warn / bad / none) the theme colours.

pyqtgraph paints with pens and brushes, which QSS cannot reach, so every
colour comes from ``ChartPalette``'s Qt properties that the theme sets
(``ChartPalette { qproperty-sosColor: …; }``); the defaults only serve a
chart run without the theme. Charts take the numbers ``models.kpi`` made;
nothing is computed here but layout.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

import pyqtgraph as pg
from PySide6.QtCore import Property, Qt
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget

from models.kpi import KIND_TEXT, SLA_TARGET, Compliance, Histogram, HourlyCounts, duration_label

#: Districts drawn one by one; the rest are summed into "other".
TOP_DISTRICTS = 8

DEFAULT_COLOURS: dict[str, str] = {
    "background": "#0f172a",
    "foreground": "#cbd5e1",
    "ackColor": "#38bdf8",
    "resolveColor": "#a78bfa",
    "districtColor": "#2dd4bf",
    "targetColor": "#f8fafc",
    "goodColor": "#22c55e",
    "warnColor": "#f59e0b",
    "badColor": "#ef4444",
    "sosColor": "#ef4444",
    "fallColor": "#f97316",
    "removedColor": "#eab308",
    "zoneExitColor": "#3b82f6",
    "lowBatteryColor": "#94a3b8",
    "routineColor": "#14b8a6",
    "lostSignalColor": "#a855f7",
    "unusualColor": "#ec4899",
}
KIND_COLOUR = {"sos": "sosColor", "fall": "fallColor", "removed": "removedColor",
               "zone_exit": "zoneExitColor", "low_battery": "lowBatteryColor",
               "not_arrived": "routineColor", "not_departed": "routineColor",
               "lost_signal": "lostSignalColor", "unusual_movement": "unusualColor"}


def _colour_property(name: str) -> Property:
    def getter(self: ChartPalette) -> QColor:
        return QColor(self._colours[name])

    def setter(self: ChartPalette, value: QColor) -> None:
        self._colours[name] = QColor(value)

    return Property(QColor, getter, setter)


class ChartPalette(QWidget):
    """Invisible carrier of the chart colours the theme sets (see module doc)."""

    background = _colour_property("background")
    foreground = _colour_property("foreground")
    ackColor = _colour_property("ackColor")
    resolveColor = _colour_property("resolveColor")
    districtColor = _colour_property("districtColor")
    targetColor = _colour_property("targetColor")
    goodColor = _colour_property("goodColor")
    warnColor = _colour_property("warnColor")
    badColor = _colour_property("badColor")
    sosColor = _colour_property("sosColor")
    fallColor = _colour_property("fallColor")
    removedColor = _colour_property("removedColor")
    zoneExitColor = _colour_property("zoneExitColor")
    lowBatteryColor = _colour_property("lowBatteryColor")
    routineColor = _colour_property("routineColor")
    lostSignalColor = _colour_property("lostSignalColor")
    unusualColor = _colour_property("unusualColor")

    def __init__(self, parent: QWidget | None = None) -> None:
        self._colours = {k: QColor(v) for k, v in DEFAULT_COLOURS.items()}
        super().__init__(parent)
        self.setObjectName("chartPalette")
        self.hide()

    def colour(self, name: str) -> QColor:
        self.ensurePolished()
        return QColor(self._colours.get(name, self._colours["foreground"]))


class DurationAxis(pg.AxisItem):
    """Seconds on the axis, written as a person reads them (30s, 2m, 1h)."""

    def tickStrings(self, values: list[float], scale: float, spacing: float) -> list[str]:
        return [duration_label(v) if v >= 0 else "" for v in values]

    def tickSpacing(self, minVal: float, maxVal: float, size: float) -> list[tuple[float, float]]:
        steps = (1, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400)
        span = max(maxVal - minVal, 1.0)
        # About one label per 55 px, on a round duration.
        want = span / max(1.0, size / 55.0)
        major = next((float(s) for s in steps if s >= want), float(steps[-1]))
        return [(major, 0.0)]


class KpiCharts(QWidget):
    """The five KPI plots and the SLA summary label; ``show_kpis`` redraws them."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("kpiCharts")
        self.palette_ = ChartPalette(self)
        self.sla_label = QLabel(self.tr("Acknowledged within SLA: no decided alerts yet"))
        self.sla_label.setObjectName("slaSummary")
        self.sla_label.setProperty("level", "none")
        self.view = pg.GraphicsLayoutWidget()
        self.view.setBackground(self.palette_.colour("background"))
        self.ack_plot = self._plot(self.tr("Time to acknowledge"), duration=True)
        self.resolve_plot = self._plot(self.tr("Time to resolve or dispatch"), duration=True)
        self.view.nextRow()
        self.hourly_plot = self._plot(self.tr("Alerts per hour by kind"), colspan=2)
        self.view.nextRow()
        self.district_plot = self._plot(self.tr("Alerts by district"))
        self.sla_plot = self._plot(self.tr("Acknowledged in time by priority (%)"))
        self.legend = self.hourly_plot.addLegend(offset=(-4, 4), colCount=5,
                                                 labelTextColor=self.palette_.colour("foreground"))
        # What the plots hold now, for tests and for the next redraw to remove.
        self.ack_bars: pg.BarGraphItem | None = None
        self.resolve_bars: pg.BarGraphItem | None = None
        self.kind_bars: dict[str, pg.BarGraphItem] = {}
        self.district_bars: pg.BarGraphItem | None = None
        self.sla_bars: pg.BarGraphItem | None = None
        self.sla_texts: list[pg.TextItem] = []
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.sla_label)
        layout.addWidget(self.view, 1)

    # ------------------------------------------------------------ building

    def _plot(self, title: str, *, duration: bool = False, colspan: int = 1) -> pg.PlotItem:
        fg = self.palette_.colour("foreground")
        axes = {"bottom": DurationAxis("bottom")} if duration else {}
        plot = self.view.addPlot(title=title, colspan=colspan, axisItems=axes)
        plot.setTitle(title, color=fg, size="10pt")
        plot.setMenuEnabled(False)
        plot.setMouseEnabled(x=False, y=False)
        plot.hideButtons()
        for name in ("left", "bottom"):
            axis = plot.getAxis(name)
            axis.setPen(fg)
            axis.setTextPen(fg)
        return plot

    def _bars(self, plot: pg.PlotItem, colour: str | QColor, **opts: Any) -> pg.BarGraphItem:
        c = self.palette_.colour(colour) if isinstance(colour, str) else colour
        item = pg.BarGraphItem(brush=pg.mkBrush(c), pen=pg.mkPen(c.darker(150)), **opts)
        plot.addItem(item)
        return item

    def _clear(self) -> None:
        for plot in (self.ack_plot, self.resolve_plot, self.hourly_plot, self.district_plot,
                     self.sla_plot):
            plot.clear()
        self.legend.clear()
        self.kind_bars = {}
        self.sla_texts = []
        self.ack_bars = self.resolve_bars = self.district_bars = self.sla_bars = None

    # ------------------------------------------------------------ showing

    def show_kpis(self, ack: Histogram, resolve: Histogram, by_kind: HourlyCounts,
                  by_district: list[tuple[str, int]], sla: Compliance,
                  sla_by_priority: dict[int, Compliance]) -> None:
        """Redraw every chart from ``models.kpi`` results."""
        self._clear()
        self.ack_bars = self._histogram(self.ack_plot, ack, "ackColor")
        self.resolve_bars = self._histogram(self.resolve_plot, resolve, "resolveColor")
        self._hourly(by_kind)
        self._districts(by_district)
        self._sla(sla, sla_by_priority)

    def _histogram(self, plot: pg.PlotItem, h: Histogram, colour: str) -> pg.BarGraphItem | None:
        """Bars per bin; the samples beyond the last bin stand in one more bar
        marked "≥ …", so nothing is left out and the bulk stays readable."""
        fg = self.palette_.colour("foreground")
        plot.setLabel("left", self.tr("alerts"), color=fg.name())
        if not h.counts:
            plot.setXRange(0, 60)
            plot.setYRange(0, 1)
            return None
        heights = [*h.counts, h.overflow] if h.overflow else list(h.counts)
        centres = [h.step * (i + 0.5) for i in range(len(heights))]
        item = self._bars(plot, colour, x=centres, height=heights, width=h.step * 0.9)
        top = max(heights) * 1.15 + 0.5
        if h.overflow:
            more = pg.TextItem(f"≥{duration_label(h.edges[-1])}", color=fg, anchor=(0.9, 1.0))
            more.setPos(centres[-1], h.overflow + top * 0.02)
            plot.addItem(more)
        plot.setXRange(0, h.step * len(heights), padding=0.02)
        plot.setYRange(0, top, padding=0)
        return item

    def _hourly(self, by_kind: HourlyCounts) -> None:
        plot = self.hourly_plot
        n = len(by_kind.starts)
        base = [0] * n
        for kind, counts in by_kind.counts.items():
            colour = KIND_COLOUR.get(kind, "foreground")
            item = self._bars(plot, colour, x=list(range(n)), height=counts, y0=list(base),
                              width=0.8, name=self.tr(KIND_TEXT.get(kind, kind)))
            self.kind_bars[kind] = item
            base = [b + c for b, c in zip(base, counts, strict=True)]
        every = max(1, math.ceil(n / 12))
        ticks = [(i, datetime.fromtimestamp(t).strftime("%H:%M"))
                 for i, t in enumerate(by_kind.starts) if i % every == 0]
        plot.getAxis("bottom").setTicks([ticks, []])
        plot.setXRange(-0.6, n - 0.4, padding=0)
        # Headroom for the legend above the tallest stack.
        plot.setYRange(0, max([*base, 1]) * 1.35, padding=0)

    def _districts(self, totals: list[tuple[str, int]]) -> None:
        plot = self.district_plot
        shown = totals[:TOP_DISTRICTS]
        rest = sum(n for _, n in totals[TOP_DISTRICTS:])
        if rest:
            shown = [*shown, (self.tr("other"), rest)]
        if not shown:
            plot.getAxis("left").setTicks([[], []])
            plot.setXRange(0, 5, padding=0)
            plot.setYRange(0, 1, padding=0)
            return
        m = len(shown)
        # Most alerts on top: row 0 is drawn highest.
        ys = [m - 1 - i for i in range(m)]
        self.district_bars = self._bars(plot, "districtColor", x0=0, y=ys, height=0.7,
                                        width=[n for _, n in shown])
        plot.getAxis("left").setTicks([[(y, name) for y, (name, _) in zip(ys, shown,
                                                                          strict=True)], []])
        plot.setYRange(-0.6, m - 0.4, padding=0)
        plot.setXRange(0, max(n for _, n in shown) * 1.1, padding=0)

    def _sla(self, overall: Compliance, per_priority: dict[int, Compliance]) -> None:
        rate = overall.rate
        if rate is None:
            text = self.tr("Acknowledged within SLA: no decided alerts yet")
        else:
            text = (self.tr("Acknowledged within SLA: %1% (%2 of %3 decided, %4 pending)")
                    .replace("%1", f"{rate * 100:.0f}").replace("%2", str(overall.met))
                    .replace("%3", str(overall.decided)).replace("%4", str(overall.pending)))
        self.sla_label.setText(text)
        if self.sla_label.property("level") != overall.level:
            self.sla_label.setProperty("level", overall.level)
            self.sla_label.style().unpolish(self.sla_label)
            self.sla_label.style().polish(self.sla_label)

        plot = self.sla_plot
        prios = sorted(per_priority)
        heights = [(per_priority[p].rate or 0.0) * 100 for p in prios]
        brushes = [pg.mkBrush(self.palette_.colour(f"{per_priority[p].level}Color"))
                   if per_priority[p].rate is not None else pg.mkBrush(None) for p in prios]
        fg = self.palette_.colour("foreground")
        self.sla_bars = pg.BarGraphItem(x=prios, height=heights, width=0.6, brushes=brushes,
                                        pen=pg.mkPen(fg))
        plot.addItem(self.sla_bars)
        target = pg.InfiniteLine(pos=SLA_TARGET * 100, angle=0,
                                 pen=pg.mkPen(self.palette_.colour("targetColor"),
                                              style=Qt.PenStyle.DashLine))
        plot.addItem(target)
        for p, h in zip(prios, heights, strict=True):
            c = per_priority[p]
            label = f"{h:.0f}%\n{c.met}/{c.decided}" if c.rate is not None else "—"
            # One row of figures above the target line, clear of every bar.
            item = pg.TextItem(label, color=fg, anchor=(0.5, 0.5))
            item.setPos(p, 118)
            plot.addItem(item)
            self.sla_texts.append(item)
        plot.getAxis("bottom").setTicks([[(p, f"P{p}") for p in prios], []])
        plot.setXRange(min(prios, default=1) - 0.6, max(prios, default=4) + 0.6, padding=0)
        plot.setYRange(0, 135, padding=0)
        plot.getAxis("left").setTicks([[(v, str(v)) for v in (0, 25, 50, 75, 100)], []])
