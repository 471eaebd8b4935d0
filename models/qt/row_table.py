"""A table model over a list of plain rows, the base of every table we show.

Why a base: the alert queue and the camera registry (and the panels to come)
hold immutable domain rows with an integer id; what differs is only how a
row becomes cells. Subclasses say that in ``COLUMNS``, ``cell`` and
``role_data``; selection keeping, lookups and in-place updates live here once.
"""

from __future__ import annotations

from typing import ClassVar, Generic, Protocol, TypeVar

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt

Index = QModelIndex | QPersistentModelIndex


class HasId(Protocol):
    @property
    def id(self) -> int: ...


RowT = TypeVar("RowT", bound=HasId)


class RowTableModel(QAbstractTableModel, Generic[RowT]):
    COLUMNS: ClassVar[tuple[str, ...]] = ()

    def __init__(self) -> None:
        super().__init__()
        self._rows: list[RowT] = []

    # --- what a subclass says ------------------------------------------------

    def cell(self, row: RowT, column: int) -> str:
        raise NotImplementedError

    def role_data(self, row: RowT, column: int, role: int) -> object:
        """Anything but the display text (tooltips, sort keys, severities)."""
        return None

    # --- rows --------------------------------------------------------------------

    def set_rows(self, rows: list[RowT]) -> None:
        self.beginResetModel()
        self._rows = list(rows)
        self.endResetModel()

    def row_at(self, row: int) -> RowT | None:
        return self._rows[row] if 0 <= row < len(self._rows) else None

    def row_of(self, row_id: int) -> int:
        """The row holding ``row_id``, or -1."""
        return next((i for i, r in enumerate(self._rows) if r.id == row_id), -1)

    def put(self, item: RowT) -> int:
        """Replace the row with the same id, or append it; returns its row."""
        i = self.row_of(item.id)
        if i < 0:
            i = len(self._rows)
            self.beginInsertRows(QModelIndex(), i, i)
            self._rows.append(item)
            self.endInsertRows()
        else:
            self._rows[i] = item
            self.dataChanged.emit(self.index(i, 0), self.index(i, len(self.COLUMNS) - 1))
        return i

    # --- QAbstractTableModel -------------------------------------------------

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.COLUMNS)

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> object:
        r = self.row_at(index.row())
        if r is None:
            return None
        if role == Qt.ItemDataRole.DisplayRole:
            return self.cell(r, index.column())
        return self.role_data(r, index.column(), role)

    def headerData(self, section: int, orientation: Qt.Orientation,
                   role: int = Qt.ItemDataRole.DisplayRole) -> object:
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return self.COLUMNS[section]
        return None
