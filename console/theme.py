"""Applies the QSS theme and a font that has Hangul glyphs."""

from __future__ import annotations

from PySide6.QtGui import QFont, QFontDatabase
from PySide6.QtWidgets import QApplication

from resources import path

HANGUL_FAMILIES = ("NanumGothic", "NanumBarunGothic", "Noto Sans CJK KR", "UnDotum")


def hangul_family() -> str | None:
    families = set(QFontDatabase.families())
    return next((f for f in HANGUL_FAMILIES if f in families), None)


def apply_theme(app: QApplication) -> None:
    family = hangul_family()
    if family is not None:
        app.setFont(QFont(family, 10))
    app.setStyleSheet(path("theme.qss").read_text(encoding="utf-8"))
