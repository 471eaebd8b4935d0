"""models/ (but models/qt/) and db/ must import no Qt or libvlc: the backend
processes and these tests run without a display."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN = ("PySide6", "shiboken6", "pyqtgraph", "vlc")
BACKEND = ["console.services.engine", "console.services.notifier", "console.services.gateway",
           "console.services.recorder", "console.services.simulator", "console.services.bus",
           "console.supervisor"]


def domain_files() -> list[Path]:
    files = []
    for pkg in ("models", "db"):
        for f in sorted((ROOT / pkg).rglob("*.py")):
            rel = f.relative_to(ROOT)
            if rel.parts[:2] != ("models", "qt") and "migrations" not in rel.parts:
                files.append(f)
    return files


def module_name(f: Path) -> str:
    return ".".join(f.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")


def test_no_forbidden_import_statements() -> None:
    pattern = re.compile(rf"^\s*(from|import)\s+({'|'.join(FORBIDDEN)})\b", re.M)
    offenders = [str(f) for f in domain_files() if pattern.search(f.read_text())]
    assert offenders == []


def test_importing_the_domain_and_backend_loads_no_qt() -> None:
    mods = [module_name(f) for f in domain_files()] + BACKEND
    code = (
        "import importlib, sys\n"
        f"for m in {mods!r}: importlib.import_module(m)\n"
        f"bad = sorted(n for n in sys.modules if n.split('.')[0] in {FORBIDDEN!r})\n"
        "print(bad); sys.exit(1 if bad else 0)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    assert len(mods) > 10
