"""The gateway raises its own open-files limit, so its connection caps are
reachable (each device connection is a file descriptor)."""

from __future__ import annotations

import json
import resource
import subprocess
import sys
from pathlib import Path

import pytest

from console.services import gateway as gw

ROOT = Path(__file__).resolve().parents[2]
PROBE = """
import json, resource
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (min(256, hard), hard))
from console.services.gateway import raise_open_files_limit
print(json.dumps([hard, raise_open_files_limit(), resource.getrlimit(resource.RLIMIT_NOFILE)]))
"""


def test_a_low_soft_limit_is_raised_to_the_hard_limit() -> None:
    """In a fresh process (the test runner's own limit stays as it is)."""
    out = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, capture_output=True,
                         text=True, timeout=60, check=True)
    hard, returned, in_force = json.loads(out.stdout)
    expected = gw.NOFILE_CAP if hard == resource.RLIM_INFINITY else hard
    assert returned == in_force == [expected, hard]


class FakeLimits:
    def __init__(self, soft: int, hard: int, refuse: bool = False) -> None:
        self.limits = (soft, hard)
        self.refuse = refuse
        self.calls: list[tuple[int, int]] = []

    def getrlimit(self, which: int) -> tuple[int, int]:
        assert which == resource.RLIMIT_NOFILE
        return self.limits

    def setrlimit(self, which: int, limits: tuple[int, int]) -> None:
        self.calls.append(limits)
        if self.refuse:
            raise ValueError("not allowed to raise maximum limit")
        self.limits = limits


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeLimits:
    limits = FakeLimits(1024, 4096)
    monkeypatch.setattr(gw.resource, "getrlimit", limits.getrlimit)
    monkeypatch.setattr(gw.resource, "setrlimit", limits.setrlimit)
    return limits


def test_the_raise_goes_to_the_hard_limit(fake: FakeLimits) -> None:
    assert gw.raise_open_files_limit() == (4096, 4096)
    assert fake.calls == [(4096, 4096)]


def test_an_unlimited_hard_limit_is_capped(fake: FakeLimits) -> None:
    fake.limits = (1024, resource.RLIM_INFINITY)
    assert gw.raise_open_files_limit() == (gw.NOFILE_CAP, resource.RLIM_INFINITY)


def test_a_limit_already_high_is_left_alone_and_never_lowered(fake: FakeLimits) -> None:
    fake.limits = (4096, 4096)
    assert gw.raise_open_files_limit() == (4096, 4096)
    fake.limits = (resource.RLIM_INFINITY, resource.RLIM_INFINITY)
    assert gw.raise_open_files_limit() == (resource.RLIM_INFINITY, resource.RLIM_INFINITY)
    assert fake.calls == []


def test_a_refused_raise_keeps_the_old_limit_and_says_so(
        fake: FakeLimits, caplog: pytest.LogCaptureFixture) -> None:
    fake.refuse = True
    assert gw.raise_open_files_limit() == (1024, 4096)
    assert "could not raise the open-files limit from 1024 to 4096" in caplog.text
