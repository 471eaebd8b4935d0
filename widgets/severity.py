"""Severity colours, set by the QSS theme and read by views that paint.

Item views cannot be styled per row from QSS, so this invisible widget
carries the colours as Qt properties that the theme sets
(``SeverityPalette { qproperty-critical: #…; }``) and delegates read. The
defaults are only a fallback for a panel run without the theme.
"""

from __future__ import annotations

from PySide6.QtCore import Property
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QWidget


def _colour_property(name: str, default: str) -> Property:
    attr = f"_{name}"

    def getter(self: SeverityPalette) -> QColor:
        return getattr(self, attr, QColor(default))

    def setter(self: SeverityPalette, value: QColor) -> None:
        setattr(self, attr, QColor(value))

    return Property(QColor, getter, setter)


class SeverityPalette(QWidget):
    critical = _colour_property("critical", "#7f1d1d")
    high = _colour_property("high", "#7c4a03")
    acknowledged = _colour_property("acknowledged", "#1e3a5f")
    resolved = _colour_property("resolved", "#1f2937")
    text = _colour_property("text", "#f1f5f9")

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("severityPalette")
        self.hide()

    def colour(self, severity: str) -> QColor:
        self.ensurePolished()
        value = getattr(self, severity, None)
        return QColor(value) if isinstance(value, QColor) else QColor(self.resolved)
