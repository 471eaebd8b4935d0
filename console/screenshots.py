"""Produces the README's screenshots from a real running demo.

``python -m console.screenshots --out resources/screenshots`` starts the
demo backend (simulated children, first incidents after a few seconds),
opens the console window on the current display, waits until an SOS and a
zone exit are in the queue, and saves what the screen shows. It needs a
real display (Xvfb works; ``python3 -m console.bootstrap demo`` starts one),
because only a screen grab shows what an operator would see.

Then a training session of the ``after-school-rush`` scenario runs beside
the demo's store (``console.training``) at 16x: a trainee's console with its
SOSes in the queue (``trainee.png``) and the trainer's, with the replay bar
and every child's trail (``trainer.png``); then, the session scored, a
trainer on the live console with the Training tab (``training-panel.png``:
the scenarios, the period the demo recorded, the session's report).
``--training-only`` takes just those three (no demo: nothing recorded).
"""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QCoreApplication
from PySide6.QtWidgets import QApplication, QWidget

from console.app import ConsoleWindow
from console.config import Config
from console.security import Security
from console.supervisor import DEMO, Supervisor
from console.theme import apply_theme
from models.geo import to_map


def free_port() -> int:
    """A free port on 127.0.0.1, so a run never collides with a live demo."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pump(seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        QCoreApplication.processEvents()
        time.sleep(0.01)


def grab(window: QWidget, out: Path) -> Path:
    pump(0.3)
    screen = window.screen()
    pixmap = screen.grabWindow(0, window.x(), window.y(), window.width(), window.height())
    if pixmap.isNull() or not pixmap.save(str(out)):
        raise RuntimeError(f"could not grab the screen into {out}")
    return out


def _stage_alerts(cfg: Config, passwords: dict[str, str]) -> None:
    """Give the queue every priority and state: alarms sent through the real
    gateway (SOS, a fall and a low battery from phones and a watch), then
    worked through the engine by the supervisor as a shift would work them."""
    import http.client
    from urllib.parse import urlencode

    from console.engine_client import EngineClient
    from console.gateway.watch import encode as watch_frame
    from db import repositories as repo
    from db.store import open_store
    from models.messages import (
        AckAlert,
        AlertList,
        AlertsRequest,
        CommandReply,
        DispatchAlert,
        HoldAlert,
        MarkStep,
        ResolveAlert,
        TakeAlert,
    )
    from models.procedures import Procedures

    engine, sessions = open_store(cfg.db_url)
    with sessions() as s:
        roster = repo.roster(s)
        home = {z.id: (z.lat, z.lon) for z in repo.zones(s)}
    engine.dispose()
    phones = [r for r in roster if r.kind == "phone" and r.zone_id in home][5:12]
    watches = [r.device_id for r in roster if r.kind == "watch"][5:7]
    for i, entry in enumerate(phones):
        device = entry.device_id
        lat, lon = home[entry.zone_id]  # type: ignore[index]  # near where the child is
        params = {"id": device, "lat": lat + 0.0006 * (i % 3), "lon": lon - 0.0005 * (i % 2),
                  "timestamp": time.time(), "accuracy": 8,
                  **({"batt": 9} if i == 6 else {"alarm": "sos"})}
        conn = http.client.HTTPConnection("127.0.0.1", cfg.osmand_port, timeout=5)
        conn.request("GET", "/?" + urlencode(params))
        conn.getresponse().read()
        conn.close()
    for device, status in zip(watches, ("00200000", "00100000"), strict=True):
        when = time.strftime("%d%m%y,%H%M%S", time.gmtime())
        content = (f"AL,{when},A,37.509000,N,126.889000,E,0.0,0.0,30.0,8,90,64,120,0,"
                   f"{status},0")
        with socket.create_connection(("127.0.0.1", cfg.watch_port), 5) as w:
            w.sendall(watch_frame("3G", device, content))
            w.recv(200)
    pump(2.0)
    steps = Procedures.load()
    with EngineClient(cfg.engine_rpc, console="screenshots",
                      security=Security.console(cfg)) as client:
        token = client.sign_in("supervisor1", passwords["supervisor1"])
        alerts = client.call(AlertsRequest(token=token), AlertList).alerts
        staged_ids = {r.device_id for r in phones}
        staged = [a for a in alerts if a.device_id in staged_ids and a.kind == "sos"]

        def do(cmd: object) -> None:
            reply = client.request(cmd)  # type: ignore[arg-type]
            if isinstance(reply, CommandReply) and reply.ok and reply.alert is not None:
                current[reply.alert.id] = reply.alert

        current = {a.id: a for a in staged}
        plan = ["ack", "take", "hold", "dispatch", "resolve"]
        for alert, action in zip(staged, plan, strict=False):
            v = lambda a=alert: current[a.id]  # noqa: E731 - the newest version
            do(AckAlert(token=token, alert_id=alert.id, alert_version=v().version))
            if action == "ack":
                continue
            do(TakeAlert(token=token, alert_id=alert.id, alert_version=v().version))
            if action == "hold":
                do(HoldAlert(token=token, alert_id=alert.id, alert_version=v().version,
                             reason="guardian calling back", note="mother on her way"))
            elif action == "dispatch":
                do(DispatchAlert(token=token, alert_id=alert.id, alert_version=v().version,
                                 target="police", reference="112-2612-0042",
                                 note="child not answering; patrol car sent"))
            elif action == "resolve":
                for step in steps.steps("sos"):
                    do(MarkStep(token=token, alert_id=alert.id, alert_version=v().version,
                                step=step.id))
                do(ResolveAlert(token=token, alert_id=alert.id, alert_version=v().version,
                                outcome="false_alarm", note="pressed while playing"))
            elif action == "take":
                do(MarkStep(token=token, alert_id=alert.id, alert_version=v().version,
                            step="cctv", note="seen on camera 12, walking north"))


def _wait(predicate: Callable[[], object], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        pump(0.1)
    return False


def _privacy_shots(window: ConsoleWindow, passwords: dict[str, str], sos_id: int | None,
                   out: Path) -> list[Path]:
    """The staged SOS's owner reveals its child with a reason (the identity
    card under the alert), then an auditor reads the usage log it wrote."""
    shots: list[Path] = []
    window.session.sign_out()
    window.session.sign_in("supervisor1", passwords["supervisor1"])
    if sos_id is not None and _wait(lambda: window.session.user == "supervisor1", 15):
        window.side.setCurrentIndex(0)
        window.alerts.select_alert(sos_id)
        pump(1.0)
        window.panel.reveal_button.click()
        pump(0.3)
        window.privacy.reveal_dialog.reason.setText("SOS, the child does not answer the phone")
        window.privacy.reveal_dialog.ok.click()
        if _wait(lambda: window.reveal_view.detail is not None, 15):
            pump(1.0)
            shots.append(grab(window, out / "reveal.png"))
    window.session.sign_out()
    window.session.sign_in("auditor1", passwords["auditor1"])
    if _wait(lambda: window.session.user == "auditor1", 15):
        window.usage_log.search()
        if _wait(lambda: window.usage_log.loaded_once, 15):
            pump(1.0)
            shots.append(grab(window, out / "usage-log.png"))
    return shots


def _admin_shots(window: ConsoleWindow, cfg: Config, out: Path) -> list[Path]:
    """The admin's Zones tab with a polygon zone (added as an admin would,
    through the engine, which publishes it to every console), then the
    Enrolment tab."""
    from models.messages import SaveZone

    admin = window.admin_services
    ring = [(127.0405, 37.5466), (127.0448, 37.5462), (127.0441, 37.5431),
            (127.0399, 37.5437), (127.0405, 37.5466)]
    shape = json.dumps({"type": "Polygon", "coordinates": [[list(p) for p in ring]]})
    window.session.send(SaveZone(token="", name="성수 놀이터 안전지대", kind="park",
                                 hours="09:00-18:00", geometry=shape), lambda _reply: None)
    window.side.setCurrentWidget(admin.zones)
    _wait(lambda: any(z.shape for z in window._zones), 10)
    x, y = to_map(37.5447, 127.0405)
    window.map.center_on(x, y, 900.0)
    pump(2.0)
    shots = [grab(window, out / "zones.png")]
    window.side.setCurrentWidget(admin.enrolment)
    pump(3.0)
    shots.append(grab(window, out / "enrolment.png"))
    return shots


def _training_window(cfg: Config, user: str, password: str) -> ConsoleWindow:
    from console.training.install import for_console

    window = ConsoleWindow(for_console(cfg))
    window.resize(1600, 960)
    window.move(0, 0)
    window.show()
    window.map.fit_seoul()
    window.start((user, password))
    _wait(lambda: window.session.user == user, 15)
    return window


def _training_shots(cfg: Config, passwords: dict[str, str], out: Path) -> list[Path]:
    """A session of ``after-school-rush`` at 16x: the trainee's console once
    its incidents have happened (an SOS located and acknowledged), then the
    trainer's, with the replay bar and the trails."""
    from console import keys
    from console.training.session import Plan, TrainingSession
    from models.messages import AckAlert
    from models.scenario import load_scenarios

    keys.init(cfg.data_dir)  # the consoles' keys, shared with the training installation
    scenario = {s.id: s for s in load_scenarios()}["after-school-rush"]
    sess = TrainingSession(cfg, Plan(scenario=scenario, by="screenshots"))
    runner = threading.Thread(target=sess.run, kwargs={"speed": 16.0}, daemon=True)
    shots: list[Path] = []
    try:
        sess.start()
        runner.start()
        trainee = _training_window(cfg, "operator1", passwords["operator1"])
        t0 = sess.source.t0
        # the scenario's incidents are 150 to 260 s in: wait for them all
        _wait(lambda: sess.player.t - t0 >= 300 and len(trainee.alerts.alerts()) >= 3, 60)
        soses = sorted((a for a in trainee.alerts.alerts() if a.kind == "sos"),
                       key=lambda a: a.id)
        if soses:
            first = soses[0]
            trainee.command(AckAlert(token="", alert_id=first.id, alert_version=first.version))
            pump(1.0)
            trainee.alerts.select_alert(first.id)
            trainee.locate(next((a for a in trainee.alerts.alerts() if a.id == first.id),
                                first))
        pump(2.5)
        shots.append(grab(trainee, out / "trainee.png"))
        trainee.close()
        trainer = _training_window(cfg, "trainer1", passwords["trainer1"])
        replay = trainer.replay
        _wait(lambda: replay is not None and replay.status is not None, 15)
        zone = next((z for z in trainer._zones if z.name == scenario.site), None)
        if zone is not None:
            x, y = to_map(zone.lat, zone.lon)
            trainer.map.center_on(float(x), float(y), 800.0)
        # trails grow from when the trainer's console joined: 5 s of session
        # time a sample, so a few wall seconds at 16x give them length
        _wait(lambda: replay is not None and len(replay.trails) >= 30, 30)
        pump(1.5)
        shots.append(grab(trainer, out / "trainer.png"))
        trainer.close()
        sess.stop_event.set()
        runner.join(20)
        sess.finish()  # scored (the trainee worked an SOS): a report to list
        shots.append(_training_panel_shot(cfg, passwords, out))
    finally:
        sess.stop_event.set()
        if runner.is_alive():
            runner.join(20)
        sess.close()
    return shots


def _training_panel_shot(cfg: Config, passwords: dict[str, str], out: Path) -> Path:
    """A trainer on the live console: the Training tab, with the scenarios,
    the period the demo recorded (if it ran) and the session just scored."""
    with Supervisor(cfg, ("bus", "engine")):
        window = ConsoleWindow(cfg)
        window.resize(1600, 960)
        window.move(0, 0)
        window.show()
        window.map.fit_seoul()
        window.start(("trainer1", passwords["trainer1"]))
        training = window.training
        assert training is not None
        _wait(lambda: window.session.user == "trainer1"
              and training.panel.scenario_table.rowCount() > 0
              and bool(training.panel.reports), 20)
        training.panel.scenario_table.selectRow(0)
        pump(1.5)
        shot = grab(window, out / "training-panel.png")
        window.close()
    return shot


def _demo_shots(cfg: Config, passwords: dict[str, str], args: argparse.Namespace
                ) -> dict[str, object]:
    """The demo's shots, on the running demo; what they showed, for the summary."""
    with Supervisor(cfg, DEMO):
        window = ConsoleWindow(cfg)
        window.resize(1600, 960)
        window.move(0, 0)
        window.show()
        window.map.fit_seoul()
        window.start(("supervisor1", passwords["supervisor1"]))
        deadline = time.monotonic() + args.timeout
        kinds: set[str] = set()
        while time.monotonic() < deadline and not {"sos", "zone_exit"} <= kinds:
            pump(0.2)
            kinds = {a.kind for a in window.alerts.alerts()}
        _stage_alerts(cfg, passwords)
        pump(2.0)
        kinds = {a.kind for a in window.alerts.alerts()}
        states = {a.state for a in window.alerts.alerts()}
        sos = next((a for a in window.alerts.alerts()
                    if a.kind == "sos" and a.state == "in_progress"), None)
        if sos is not None:
            window.alerts.select_alert(sos.id)
        pump(2.0)
        shots = [grab(window, args.out / "console.png")]
        summary = {
            "alert_kinds": sorted(kinds),
            "alert_states": sorted(states),
            "alert_rows": window.alerts.model.rowCount(),
            "children": window.status.children.text(),
            "bus": window.status.bus.text(),
        }
        if args.console_only:
            window.close()
            return {**summary, "shots": [str(s) for s in shots]}
        if sos is not None:
            window.locate(sos)
        # The CCTV tiles of the alert's nearest cameras start playing.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and any(
                t.state != "live" for t in window.cctv.visible_tiles() if t.feed is not None):
            pump(0.2)
        pump(2.0)
        shots.append(grab(window, args.out / "alert-located.png"))
        tiles = [t.state for t in window.cctv.visible_tiles()]
        if sos is not None:  # the SOS child's card, its trail on the map
            window.detail_tabs.setCurrentWidget(window.child_card)
            if _wait(lambda: window.child_card.card is not None, 15):
                pump(1.0)
                shots.append(grab(window, args.out / "child-card.png"))
            window.detail_tabs.setCurrentWidget(window.panel)
        # Let the new P1s miss their 30 s acknowledgement: escalated rows.
        deadline = time.monotonic() + 45
        while time.monotonic() < deadline and not any(
                a.breaches for a in window.alerts.alerts()):
            pump(0.5)
        window.open_escalation()
        window.escalation_window.move(0, 0)
        pump(3.0)
        shots.append(grab(window.escalation_window, args.out / "escalation.png"))
        window.escalation_window.hide()
        window.side.setCurrentWidget(window.gateway)
        pump(2.5)
        shots.append(grab(window, args.out / "gateway.png"))
        window.session.sign_out()
        window.session.sign_in("admin1", passwords["admin1"])
        pump(2.0)
        window.side.setCurrentWidget(window.camera_panel)
        pump(3.0)
        shots.append(grab(window, args.out / "cameras.png"))
        shots += _admin_shots(window, cfg, args.out)
        shots += _privacy_shots(window, passwords, sos.id if sos else None, args.out)
        summary |= {"shots": [str(s) for s in shots], "tiles": tiles,
                    "shown": window.cctv.cameras_shown()}
        window.close()
    return summary


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m console.screenshots", description=__doc__)
    p.add_argument("--out", type=Path, default=Path("resources/screenshots"))
    p.add_argument("--children", type=int, default=None)
    p.add_argument("--timeout", type=float, default=90.0)
    p.add_argument("--training-only", action="store_true",
                   help="only the training shots (trainee.png, trainer.png, "
                   "training-panel.png)")
    p.add_argument("--no-training", action="store_true",
                   help="only the live shots (the training consoles have tests of their own)")
    p.add_argument("--console-only", action="store_true",
                   help="only console.png, with every alert kind and state staged (the demo "
                   "test's: the other live shots' views have tests of their own)")
    args = p.parse_args(argv)
    args.no_training |= args.console_only
    args.out.mkdir(parents=True, exist_ok=True)

    from console.cli import _prepare_store
    from db.demo_accounts import accounts_file, read_demo_accounts

    data_dir = Path(tempfile.mkdtemp(prefix="cs-shot-"))
    try:
        ports = {name: free_port() for name in ("osmand_port", "watch_port", "feeds_port",
                                                 "relay_port", "demo_rtsp_port")}
        # the demo's zone exit counted 5 s out, not after the default 30 s dwell
        cfg = Config(data_dir=data_dir, children=args.children, sim_first_incident_s=12.0,
                     sim_incident_every_s=600.0, fence_dwell_s={"school": 5.0, "park": 5.0},
                     **ports)  # type: ignore[arg-type]
        cfg.ensure_dirs()
        _prepare_store(cfg, demo=True)
        passwords = read_demo_accounts(accounts_file(data_dir))
        app = QApplication(sys.argv[:1])
        apply_theme(app)
        summary: dict[str, object] = {}
        if not args.training_only:
            summary = _demo_shots(cfg, passwords, args)
        # the demo has stopped: its store, accounts and keys stay for the session
        training = [] if args.no_training else _training_shots(cfg, passwords, args.out)
        summary["shots"] = [*summary.get("shots", []), *map(str, training)]  # type: ignore[misc]
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)  # the run's store, sockets and logs
    print(json.dumps(summary, ensure_ascii=False))
    kinds = set(summary.get("alert_kinds", ()))  # type: ignore[call-overload]
    trained = args.no_training or len(training) == 3
    return 0 if (args.training_only or {"sos", "zone_exit"} <= kinds) and trained else 1


if __name__ == "__main__":
    sys.exit(main())
