"""How every read-only list in the console behaves: whole rows selected,
nothing edited in place, no row numbers or grid, one line per row, columns
sized to their contents with one taking the rest."""

from __future__ import annotations

from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QTableView


def read_only(view: QTableView, stretch: int | None = None,
              single: bool = True) -> QTableView:
    """Set ``view`` up as a read-only list; ``stretch`` is the column that
    takes the spare width (None: the last one)."""
    view.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    if single:
        view.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
    view.verticalHeader().hide()
    view.setShowGrid(False)
    view.setWordWrap(False)
    head = view.horizontalHeader()
    head.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
    if stretch is None:
        head.setStretchLastSection(True)
    else:
        head.setSectionResizeMode(stretch, QHeaderView.ResizeMode.Stretch)
    return view
