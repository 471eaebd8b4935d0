"""PySide6 6.12.0 aborts a Python 3.11 process after a few hundred
Signal.emit() calls (a reference-count bug on True); pyqtgraph emits on
every repaint. This guards the pinned version: 100k emits must survive."""

from __future__ import annotations

import subprocess
import sys

STRESS = """
from PySide6.QtCore import QCoreApplication, QObject, Signal

class Emitter(QObject):
    flag = Signal(bool)
    bare = Signal()
    payload = Signal(object)

app = QCoreApplication([])
e = Emitter()
seen = [0]
e.flag.connect(lambda v: seen.__setitem__(0, seen[0] + 1))
e.bare.connect(lambda: None)
e.payload.connect(lambda p: None)
for i in range(100_000):
    e.flag.emit(True)
    e.bare.emit()
    e.payload.emit((i, "x"))
print(seen[0])
"""


def test_100k_emits_do_not_abort() -> None:
    out = subprocess.run([sys.executable, "-c", STRESS], capture_output=True, text=True,
                         timeout=120, env={"QT_QPA_PLATFORM": "offscreen", "PATH": "/usr/bin"})
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "100000"
