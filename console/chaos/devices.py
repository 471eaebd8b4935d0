"""Simulated devices that behave like real ones when they are not acknowledged.

Why: the delivery contract is "acknowledged means durable; otherwise the
device resends" (DESIGN.md, Delivery). A test that sends once and never
resends measures nothing about it. So:

- a **press** is one SOS: a phone sends OsmAnd ``alarm=sos``, a watch an
  ``AL`` frame with the SOS bit. Acknowledged means HTTP 200 (a 503 with
  ``Retry-After``, another status or no answer is not) or the watch's
  ``AL`` reply. Until acknowledged the device sends it again, with the same
  device time, until its deadline; repeats must fold into one alert.
- a **fix load** is phones reporting positions, each phone keeping its
  unacknowledged fix and resending it (oldest first) before any new one,
  as Traccar Client's buffer does.

Every attempt is recorded, so the figures can say what was acknowledged,
what was refused and how often devices had to resend.
"""

from __future__ import annotations

import http.client
import math
import random
import socket
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from urllib.parse import urlencode

from console.chaos.harness import DeviceInfo

ANSWER_TIMEOUT_S = 3.0  # a device waits this long for an answer
RESEND_S = 1.0  # and this long before sending again (a 503's Retry-After, capped)
MAX_RESEND_S = 2.0
SOS_STATUS = "00010000"  # the watch status word with the SOS bit (16) set


# ----------------------------------------------------------------- one send


@dataclass(frozen=True)
class Answer:
    acked: bool
    what: str  # "200", "503", "no reply", "refused: time_in_future", ...
    retry_after_s: float = RESEND_S


def osmand_get(port: int, params: dict[str, object]) -> Answer:
    """One OsmAnd GET as a phone app sends it."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=ANSWER_TIMEOUT_S)
    try:
        conn.request("GET", "/?" + urlencode(params))
        resp = conn.getresponse()
        body = resp.read().decode(errors="replace")
        retry = _retry_after(resp.getheader("Retry-After"))
    except (OSError, http.client.HTTPException) as exc:
        return Answer(False, "no reply" if isinstance(exc, TimeoutError) else "no connection")
    finally:
        conn.close()
    if resp.status == 200:
        if body.startswith("refused"):
            return Answer(True, body[:40])  # answered, on purpose not kept
        return Answer(True, "200")
    return Answer(False, str(resp.status), retry)


def _retry_after(raw: str | None) -> float:
    try:
        value = float(raw) if raw is not None else RESEND_S
    except ValueError:
        return RESEND_S
    return min(max(value, 0.1), MAX_RESEND_S) if math.isfinite(value) else RESEND_S


def watch_frame(device_id: str, content: str) -> bytes:
    from console.gateway.watch import encode

    return encode("3G", device_id, content)


def watch_alarm(port: int, device_id: str, t: float, lat: float, lon: float) -> Answer:
    """One ``AL`` frame with the SOS bit on a fresh connection; acknowledged
    only by the server's ``AL`` reply."""
    when = time.strftime("%d%m%y,%H%M%S", time.gmtime(t))
    content = (f"AL,{when},A,{lat:.6f},N,{lon:.6f},E,0.0,0.0,30.0,8,90,71,120,0,"
               f"{SOS_STATUS},0")
    expected = watch_frame(device_id, "AL")
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=ANSWER_TIMEOUT_S) as s:
            s.sendall(watch_frame(device_id, content))
            got = b""
            deadline = time.monotonic() + ANSWER_TIMEOUT_S
            while expected not in got and time.monotonic() < deadline:
                s.settimeout(max(0.05, deadline - time.monotonic()))
                chunk = s.recv(4096)
                if not chunk:
                    break
                got += chunk
    except TimeoutError:
        return Answer(False, "no reply")
    except OSError:
        return Answer(False, "no connection")
    return Answer(True, "AL") if expected in got else Answer(False, "no reply")


# ------------------------------------------------------------- SOS storm


@dataclass
class Press:
    """One SOS press of one child's device, and how it went."""

    device: DeviceInfo
    offset_s: float  # when it is pressed, from the storm's start
    t: float = 0.0  # device time, fixed at the first send
    attempts: int = 0
    acked: bool = False
    refusals: Counter[str] = field(default_factory=Counter)


class SosStorm:
    """``presses`` SOS per child, spread over ``window_s``, each resent until
    acknowledged or ``deadline`` (monotonic)."""

    def __init__(self, devices: list[DeviceInfo], presses: int, window_s: float,
                 watch_port: int, osmand_port: int, seed: int = 13) -> None:
        rng = random.Random(seed)
        gap = max(window_s / max(presses, 1), 1.2)  # watch times have whole seconds
        self.presses: list[Press] = []
        for i, d in enumerate(devices):
            phase = (i / max(len(devices), 1)) * gap
            for j in range(presses):
                self.presses.append(Press(d, phase + j * gap + rng.uniform(0, 0.05)))
        self.presses.sort(key=lambda p: p.offset_s)
        self.watch_port = watch_port
        self.osmand_port = osmand_port
        self.deadline = 0.0
        self._thread: threading.Thread | None = None

    @property
    def children(self) -> set[str]:
        return {p.device.child for p in self.presses}

    def start(self, deadline: float) -> None:
        self.deadline = deadline
        self._thread = threading.Thread(target=self._run, name="chaos-sos", daemon=True)
        self._thread.start()

    def join(self) -> None:
        if self._thread is not None:
            self._thread.join(max(0.0, self.deadline - time.monotonic()) + 10.0)

    def _run(self) -> None:
        t0 = time.monotonic()
        with ThreadPoolExecutor(max_workers=min(32, max(1, len(self.presses)))) as pool:
            for press in self.presses:
                delay = t0 + press.offset_s - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                if time.monotonic() >= self.deadline:
                    break
                pool.submit(self._press, press)

    def _press(self, p: Press) -> None:
        d = p.device
        p.t = round(time.time(), 3) if d.kind == "phone" else float(int(time.time()))
        lat, lon = _near(d, random.Random(hash((d.device_id, p.t))))
        while not p.acked and time.monotonic() < self.deadline:
            p.attempts += 1
            if d.kind == "watch":
                answer = watch_alarm(self.watch_port, d.device_id, p.t, lat, lon)
            else:
                answer = osmand_get(self.osmand_port, {
                    "id": d.device_id, "lat": f"{lat:.6f}", "lon": f"{lon:.6f}",
                    "timestamp": f"{p.t:.3f}", "accuracy": 8, "batt": 80, "alarm": "sos"})
            if answer.acked:
                p.acked = True
                return
            p.refusals[answer.what] += 1
            time.sleep(min(answer.retry_after_s, max(0.0, self.deadline - time.monotonic())))


def _near(d: DeviceInfo, rng: random.Random) -> tuple[float, float]:
    """A position well inside the child's zone (no zone exit is provoked)."""
    r = d.radius_m / 4 * rng.random()
    a = rng.uniform(0, 2 * math.pi)
    return (d.lat + r * math.cos(a) / 111_320.0,
            d.lon + r * math.sin(a) / (111_320.0 * math.cos(math.radians(d.lat))))


# -------------------------------------------------------------- fix load


@dataclass
class SentFix:
    device_id: str
    t: float
    lat: float
    lon: float
    attempts: int = 0
    acked: bool = False
    answer: str = ""  # the acknowledging answer ("200", "refused: …")


class FixLoad:
    """Phones reporting at ``rate`` fixes/s in all for ``window_s``; each
    phone resends its unacknowledged fix before reporting a new one, until
    ``deadline``."""

    def __init__(self, devices: list[DeviceInfo], rate: float, window_s: float,
                 osmand_port: int, workers: int = 4) -> None:
        self.devices = devices
        self.rate = rate
        self.window_s = window_s
        self.port = osmand_port
        self.workers = max(1, min(workers, len(devices)))
        self.fixes: list[SentFix] = []
        self.deadline = 0.0
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []

    def start(self, deadline: float) -> None:
        self.deadline = deadline
        t0 = time.monotonic()
        for w in range(self.workers):
            mine = self.devices[w::self.workers]
            th = threading.Thread(target=self._run, args=(mine, t0), daemon=True,
                                  name=f"chaos-fixes-{w}")
            th.start()
            self._threads.append(th)

    def join(self) -> None:
        for th in self._threads:
            th.join(max(0.0, self.deadline - time.monotonic()) + 10.0)

    def _run(self, mine: list[DeviceInfo], t0: float) -> None:
        if not mine:
            return
        every = self.workers / self.rate if self.rate > 0 else 1.0
        pending: dict[str, SentFix] = {}
        rng = random.Random(hash(mine[0].device_id))
        i = 0
        next_at = time.monotonic()
        while time.monotonic() < self.deadline:
            in_window = time.monotonic() - t0 < self.window_s
            if not in_window and not pending:
                return
            if in_window:
                d = mine[i % len(mine)]
                i += 1
            else:  # the window is over: only what is still unacknowledged
                d = next(dd for dd in mine if dd.device_id in pending)
            fix = pending.get(d.device_id)
            if fix is None:
                lat, lon = _near(d, rng)
                fix = SentFix(d.device_id, round(time.time(), 3), lat, lon)
                with self._lock:
                    self.fixes.append(fix)
            self._send(fix)
            if fix.acked:
                pending.pop(d.device_id, None)
            else:
                pending[d.device_id] = fix
            next_at += every if in_window else RESEND_S / max(1, len(pending))
            pause = next_at - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            else:
                next_at = time.monotonic()

    def _send(self, fix: SentFix) -> None:
        fix.attempts += 1
        answer = osmand_get(self.port, {
            "id": fix.device_id, "lat": f"{fix.lat:.6f}", "lon": f"{fix.lon:.6f}",
            "timestamp": f"{fix.t:.3f}", "accuracy": 8, "batt": 80})
        if answer.acked:
            fix.acked, fix.answer = True, answer.what

    def acked(self) -> list[SentFix]:
        """Fixes acknowledged as received (a content refusal is answered too,
        but on purpose not kept, so it is not counted here)."""
        return [f for f in self.fixes if f.acked and f.answer == "200"]
