"""CCTV benchmark: CPU of the console process with a 3×3 grid playing.

Why a separate process: the number that matters is what nine live players
cost the console, so the grid runs alone in a child process (a real
QApplication on X, libvlc decoding and drawing nine streams) and measures
itself with ``os.times()`` (all threads, libvlc's included) over a window
that starts once every tile is live.  The test streams come from another
process (``tests/widgets/ts_source.py``), so encoding them is not counted;
its CPU and the X server's (when this benchmark started its own Xvfb) are
reported beside it, because on a real workstation the X server's share
moves to the GPU.

Also measured: how late a 10 ms GUI timer fires (is the GUI still fluid?)
and libvlc's decoder counter per tile (is every tile really playing?
libvlc 3.0.24 counts about two per H.264 frame, so read it as a rate that
must not be zero, not as frames per second).  Nothing is asserted; these
are numbers to compare.

``python -m tests.bench.bench_cctv [--seconds 10] [--tiles 9] [--size 320x240] [--fps 10]``
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tests.bench.measure import CLK_TCK, cpu_ticks

ROOT = Path(__file__).resolve().parents[2]


def _cpu_seconds(pid: int) -> float:
    return (cpu_ticks(pid) or 0) / CLK_TCK


def run(seconds: float = 10.0, *, tiles: int = 9, size: str = "320x240", fps: int = 10,
        codec: str = "h264", window: str = "1280x900",
        vlc_args: tuple[str, ...] = ()) -> dict[str, Any]:
    """Play ``tiles`` live streams in a grid for ``seconds``; return CPU and health.

    ``vlc_args`` are added to the grid's libvlc options (e.g. ``--vout=gl``).
    """
    from tests.services import XvfbServer, free_tcp_port

    xvfb: XvfbServer | None = None
    display = os.environ.get("DISPLAY", "")
    if not display:
        xvfb = XvfbServer()
        display = xvfb.start()
    env = {**os.environ, "DISPLAY": display, "QT_QPA_PLATFORM": "xcb",
           "PYTHONPATH": str(ROOT)}
    port = free_tcp_port()
    source = subprocess.Popen(
        [sys.executable, "-m", "tests.widgets.ts_source", "--port", str(port), "--cameras",
         str(tiles), "--size", size, "--fps", str(fps), "--codec", codec],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert source.stdout is not None
        urls = []
        for line in source.stdout:
            if line.strip() == "ready":
                break
            urls.append(line.strip())
        src_cpu0 = _cpu_seconds(source.pid)
        x_cpu0 = _cpu_seconds(xvfb.process.pid) if xvfb and xvfb.process else None
        t0 = time.monotonic()
        child = subprocess.run(
            [sys.executable, "-m", "tests.bench.bench_cctv", "--child", "--seconds",
             str(seconds), "--tiles", str(tiles), "--window", window,
             *(f"--vlc-arg={a}" for a in vlc_args), *urls],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=seconds + 90)
        wall = time.monotonic() - t0
        lines = [ln for ln in child.stdout.splitlines() if ln.startswith("{")]
        if child.returncode != 0 or not lines:
            raise RuntimeError(f"grid process failed ({child.returncode}): "
                               f"{child.stderr[-2000:]}")
        result: dict[str, Any] = json.loads(lines[-1])
        # The source and X server ran for the child's whole life (start-up included).
        result["source_cpu_percent"] = 100 * (_cpu_seconds(source.pid) - src_cpu0) / wall
        if x_cpu0 is not None and xvfb is not None and xvfb.process is not None:
            result["xserver_cpu_percent"] = 100 * (_cpu_seconds(xvfb.process.pid) - x_cpu0) / wall
        result.update(stream=f"{size}@{fps} {codec}", window=window, cpus=os.cpu_count(),
                      vlc_args=" ".join(vlc_args))
        return result
    finally:
        source.terminate()
        try:
            source.wait(timeout=10)
        except subprocess.TimeoutExpired:
            source.kill()
            source.wait()
        if xvfb is not None:
            xvfb.stop()


def _child(urls: list[str], seconds: float, tiles: int, window: str,
           vlc_args: list[str]) -> dict[str, Any]:
    """The console side: a grid on X, measured once every tile is live."""
    import vlc
    from PySide6.QtCore import QEventLoop, QTimer
    from PySide6.QtWidgets import QApplication

    from widgets.cctv_grid import VLC_ARGS, CctvGrid

    app = QApplication(sys.argv[:1])
    grid = CctvGrid(tiles=tiles, vlc_args=(*VLC_ARGS, *vlc_args))
    w, h = (int(v) for v in window.split("x"))
    grid.resize(w, h)
    grid.show()
    grid.show_cameras([(i + 1, f"Camera {i + 1}", u) for i, u in enumerate(urls)])
    deadline = time.monotonic() + 60
    while not all(t.state == "live" for t in grid.visible_tiles()):
        if time.monotonic() > deadline:
            raise RuntimeError(f"tiles not live: {[t.state for t in grid.visible_tiles()]}")
        app.processEvents()
        time.sleep(0.02)
    warm = time.monotonic() + 2.0
    while time.monotonic() < warm:
        app.processEvents()
        time.sleep(0.01)

    def decoded() -> list[int]:
        out = []
        for t in grid.visible_tiles():
            stats = vlc.MediaStats()
            player = t.player()
            media = player.get_media() if player is not None else None
            out.append(int(stats.decoded_video) if media and media.get_stats(stats) else 0)
        return out

    lags: list[float] = []
    last = [time.perf_counter()]

    def tick() -> None:
        now = time.perf_counter()
        lags.append((now - last[0]) * 1000 - 10)
        last[0] = now

    ticker = QTimer()
    ticker.setInterval(10)
    ticker.timeout.connect(tick)
    d0 = decoded()
    c0, w0 = os.times(), time.monotonic()
    ticker.start()
    loop = QEventLoop()  # not app.exec(): quitting the app would release the grid first
    QTimer.singleShot(int(seconds * 1000), loop.quit)
    loop.exec()
    ticker.stop()
    c1, elapsed = os.times(), time.monotonic() - w0
    d1 = decoded()
    states = [t.state for t in grid.visible_tiles()]
    threads = next((int(ln.split()[1]) for ln in Path("/proc/self/status").read_text()
                    .splitlines() if ln.startswith("Threads:")), 0)
    grid.release()
    grid.close()
    lags.sort()
    user, system = c1.user - c0.user, c1.system - c0.system
    per_tile = [(b - a) / elapsed for a, b in zip(d0, d1, strict=True)]
    return {
        "tiles": tiles,
        "seconds": elapsed,
        "cpu_percent": 100 * (user + system) / elapsed,  # of one core
        "cpu_user_percent": 100 * user / elapsed,
        "cpu_system_percent": 100 * system / elapsed,
        "cpu_percent_of_machine": 100 * (user + system) / elapsed / (os.cpu_count() or 1),
        "cpu_percent_per_tile": 100 * (user + system) / elapsed / tiles,
        "tiles_live_at_end": states.count("live"),
        "libvlc_decoded_per_s_min": min(per_tile),
        "libvlc_decoded_per_s_mean": sum(per_tile) / len(per_tile),
        "gui_timer_lag_ms_p99": lags[int(0.99 * (len(lags) - 1))] if lags else float("nan"),
        "gui_timer_lag_ms_max": lags[-1] if lags else float("nan"),
        "threads": threads,
    }


def headline(r: dict[str, Any]) -> str:
    """One line for ``childsafe bench cameras``: what the grid costs the console."""
    side = {1: "1×1", 4: "2×2", 9: "3×3"}.get(int(r["tiles"]), f"{r['tiles']} tiles")
    others = [f"stream source {r['source_cpu_percent']:.0f}%"]
    if "xserver_cpu_percent" in r:
        others.append(f"X server {r['xserver_cpu_percent']:.0f}%")
    return (f"cctv {side} grid playing ({r['stream']}): console CPU "
            f"{r['cpu_percent']:.0f}% of one core ({r['cpu_percent_per_tile']:.1f}% per tile, "
            f"{r['cpu_percent_of_machine']:.0f}% of {r['cpus']} CPUs); "
            f"{r['tiles_live_at_end']}/{r['tiles']} tiles live, libvlc min "
            f"{r['libvlc_decoded_per_s_min']:.0f} decoded/s; GUI timer lag p99 "
            f"{r['gui_timer_lag_ms_p99']:.1f} ms; beside it: {', '.join(others)}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--tiles", type=int, default=9, choices=(1, 4, 9))
    parser.add_argument("--size", default="320x240")
    parser.add_argument("--fps", type=int, default=10)
    parser.add_argument("--codec", default="h264")
    parser.add_argument("--window", default="1280x900")
    parser.add_argument("--vlc-arg", action="append", default=[], metavar="OPT",
                        help="extra libvlc option, e.g. --vlc-arg=--vout=gl (repeatable)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("urls", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(_child(args.urls, args.seconds, args.tiles, args.window,
                                args.vlc_arg)), flush=True)
        return 0
    result = run(args.seconds, tiles=args.tiles, size=args.size, fps=args.fps,
                 codec=args.codec, window=args.window, vlc_args=tuple(args.vlc_arg))
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
