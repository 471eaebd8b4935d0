"""One installation's settings: where its files live and how its processes meet.

Everything of an installation (store, ipc sockets, logs) lives under its
``data_dir`` so two installations on one machine never collide. Settings
come from defaults, then an optional TOML file, then command-line flags.
"""

from __future__ import annotations

import json
import math
import tomllib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Literal, get_type_hints

import msgspec
import platformdirs

from db.store import sqlite_url

SIGNED = frozenset({"watch_utc_offset_s"})  # durations that may be negative (west of UTC)
# Unix socket paths are limited to 107 bytes; keep a margin for the file name.
_IPC_PATH_LIMIT = 90


def default_data_dir() -> Path:
    return Path(platformdirs.user_data_dir("childsafe", appauthor=False))


@dataclass
class Config:
    data_dir: Path = field(default_factory=default_data_dir)
    db_url: str = ""  # empty: SQLite under data_dir
    bus_transport: str = "ipc"  # ipc | tcp
    bus_host: str = "127.0.0.1"
    bus_pub_port: int = 5601  # tcp only: publishers connect here (XSUB)
    bus_sub_port: int = 5602  # tcp only: subscribers connect here (XPUB)
    engine_port: int = 5603  # tcp only: request/reply to the engine
    osmand_host: str = "127.0.0.1"  # where devices reach the gateway (all protocols)
    osmand_port: int = 5055  # phones: OsmAnd HTTP (Traccar's port)
    watch_port: int = 5093  # child GPS watches: "3G" text protocol over TCP
    watch_utc_offset_s: float = 0.0  # watches that send local time: 32400 for KST
    feeds_port: int = 5081  # tag readers and carrier LBS feeds: JSON over HTTP
    relay_host: str = "127.0.0.1"  # plain HTTP (tokens in the clear): keep it local or behind TLS
    relay_port: int = 8560  # media relay: MPEG-TS over HTTP to consoles
    relay_prealarm_s: float = 30.0  # seconds kept before (and recorded after) an SOS
    relay_debounce_s: float = 2.0  # a camera state must hold this long to be published
    relay_idle_s: float = 15.0  # stop pulling a camera this long after its last viewer
    # <data_dir>/evidence may hold this much; then new clips are refused (kept ones stay)
    evidence_budget_mb: float = 2048.0
    demo_rtsp_port: int = 8554  # the demo's stand-in cameras (RTSP)
    children: int | None = None  # demo seed size; None = the pilot's 2,600
    sim_interval_s: float = 10.0  # each simulated device reports this often
    sim_first_incident_s: float = 15.0
    sim_incident_every_s: float = 180.0
    # Shares of simulated phones uploading by OsmAnd GET, form POST, and the
    # JSON POST of Traccar Client 9+ (each phone keeps one app).
    sim_phone_forms: dict[str, float] = field(
        default_factory=lambda: {"get": 0.35, "form": 0.15, "json": 0.5})
    sim_watch_heartbeat_s: float = 300.0  # watches send LK this often between reports
    sim_carrier_share: float = 0.1  # of watch/phone children also located by the carrier
    sim_carrier_every_s: float = 60.0  # the carrier locates each of them this often
    # A carrier's fix reaches the feed this long after it was measured; above
    # sim_interval_s, it is history that never moves a child who is reporting.
    sim_carrier_lag_s: float = 20.0
    sim_carrier_methods: dict[str, float] = field(
        default_factory=lambda: {"gps": 0.5, "wifi": 0.3, "cell": 0.2})
    # Retention (console.services.recorder): routine raw fixes; the
    # location-usage log (§16(2), at least 6 months) and the access log
    # (PIPA, 2 years); an alert's fixes, clips and notes stay until its case
    # closes plus case_hold_days.
    fix_retention_days: float = 7.0
    usage_keep_days: float = 183.0
    access_keep_days: float = 730.0
    case_hold_days: float = 90.0
    # The bus tape (db.tape, <data_dir>/tape): every bus frame, for replay and
    # training, in hourly files. It holds raw positions, so keep it no longer
    # than fix_retention_days (a longer setting is logged as a concern).
    tape_keep_days: float = 7.0
    # A reveal of a child's identity or history lasts this long (then the
    # console forgets what it showed).
    reveal_s: float = 900.0
    # "curve": every bus and command socket authenticated by CURVE keys under
    # <data_dir>/keys, failing closed; "off" only to measure what it costs.
    bus_security: Literal["curve", "off"] = "curve"
    # The key pair this workstation's console and command-line tools use
    # (<data_dir>/keys/<console_key>.key_secret): "console" or "console-<name>".
    console_key: str = "console"
    # How long the gateway's journal keeps what devices were told is received
    # (console.journal): a consumer down longer than this cannot catch up.
    journal_keep_s: float = 3600.0
    # Alert priorities per kind (1 most urgent .. 4) over models.alerts'
    # defaults, e.g. {zone_exit = 1}; SLA per priority as [seconds to
    # acknowledge, seconds to resolve or dispatch], e.g. {P1 = [30, 600]}.
    alert_priorities: dict[str, int] = field(default_factory=dict)
    alert_sla: dict[str, list[float]] = field(default_factory=dict)
    # The services (issue 9). Timetables, the calendar and notices are in
    # local time: Korea has no daylight saving, so an offset is enough.
    local_utc_offset_s: float = 32400.0
    arrival_grace_s: float = 900.0  # not arrived by a slot's start + this: an alert
    departure_grace_s: float = 1800.0  # still inside after its end + this: an alert
    # An exit from a slot's zone this long before its end, or later, is the
    # child going home (a departure notice); earlier, it is an alert.
    dismissal_window_s: float = 1200.0
    # After an engine start, deadlines wait this long for devices to report
    # (the engine keeps no positions across a restart).
    deadline_settle_s: float = 120.0
    # Seconds in a zone (or out of it) before an enter (exit) counts, per zone
    # kind: jitter at a fence never flaps.
    fence_dwell_s: dict[str, float] = field(default_factory=lambda: {
        "school": 30.0, "academy": 30.0, "park": 30.0, "home": 60.0, "custom": 30.0})
    # No fix for this long from a child expected at school or on the way: a
    # lost-signal alert (per device kind; 0 never: a tag is only read in zones).
    lost_signal_s: dict[str, float] = field(default_factory=lambda: {
        "watch": 900.0, "phone": 1200.0, "tag": 0.0})
    # Sustained speed above this (km/h, per child's profile) is unusual movement.
    speed_limit_kmh: dict[str, float] = field(default_factory=lambda: {
        "walking": 15.0, "bus": 70.0})
    # Guardians' notices: "record" writes them to <data_dir>/notices.jsonl
    # (the demo); "smtp" sends e-mail through smtp_host.
    notifier_adapter: Literal["record", "smtp"] = "record"
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 25
    smtp_from: str = "childsafe@localhost"
    smtp_user: str = ""
    smtp_password: str = ""
    smtp_starttls: bool = False
    notice_max_attempts: int = 6  # then the notice is dead-lettered, for an operator
    location_checks_per_min: int = 6  # per guardian token (then 429)
    # A training installation (``console.training``): its own bus, keys and
    # scratch store under <live data_dir>/training, every envelope marked
    # "replay", its engine on the replayed clock starting at replay_start.
    training: bool = False
    replay_start: float = 0.0

    def __post_init__(self) -> None:
        self.data_dir = Path(self.data_dir).expanduser().resolve()
        if not self.db_url:
            self.db_url = sqlite_url(self.data_dir)

    # ------------------------------------------------------------------ paths
    @property
    def run_dir(self) -> Path:
        return self.data_dir / "run"

    @property
    def log_dir(self) -> Path:
        return self.data_dir / "logs"

    def _endpoint(self, name: str, port: int) -> str:
        if self.bus_transport == "tcp":
            return f"tcp://{self.bus_host}:{port}"
        path = self.run_dir / f"{name}.sock"
        if len(str(path)) > _IPC_PATH_LIMIT:
            raise ValueError(
                f"data dir {self.data_dir} is too long for ipc sockets; "
                "use a shorter --data-dir or bus_transport = 'tcp'"
            )
        return f"ipc://{path}"

    @property
    def bus_pub(self) -> str:
        return self._endpoint("bus-in", self.bus_pub_port)

    @property
    def bus_sub(self) -> str:
        return self._endpoint("bus-out", self.bus_sub_port)

    @property
    def engine_rpc(self) -> str:
        return self._endpoint("engine", self.engine_port)

    @property
    def bus_source(self) -> str:
        """What this installation's publishers write in every envelope."""
        return "replay" if self.training else "live"

    @property
    def bus_sources(self) -> tuple[str, ...]:
        """What its subscribers accept: a live process never takes replayed
        data, a training one only takes replayed data."""
        return ("replay",) if self.training else ("live", "sim")

    @property
    def replay_rpc(self) -> str:
        """A training session's control socket (the trainer's window)."""
        return self._endpoint("replay", self.engine_port + 1)

    def ipc_paths(self) -> list[Path]:
        return [Path(e[len("ipc://"):]) for e in (self.bus_pub, self.bus_sub, self.engine_rpc,
                                                  self.replay_rpc) if e.startswith("ipc://")]

    def ensure_dirs(self) -> None:
        for d in (self.data_dir, self.run_dir, self.log_dir):
            d.mkdir(parents=True, exist_ok=True)

    # --------------------------------------------------------- serialisation
    def to_json(self) -> str:
        data = asdict(self)
        data["data_dir"] = str(self.data_dir)
        return json.dumps(data, indent=2)

    @classmethod
    def from_mapping(cls, data: dict[str, object]) -> Config:
        """Settings checked by type and range at load, each error naming its
        key: a typo must stop ``serve`` with a sentence, not make a service
        die on every restart."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown setting(s): {', '.join(unknown)}")
        hints = get_type_hints(cls)
        checked: dict[str, object] = {}
        problems: list[str] = []
        for key, value in data.items():
            hint = str if hints[key] is Path else hints[key]
            if isinstance(value, Path) and hint is str:
                value = str(value)
            try:
                checked[key] = msgspec.convert(value, hint, strict=hint is not float)
            except msgspec.ValidationError as exc:
                problems.append(f"{key}: {exc} (got {value!r:.60})")
                continue
            number = checked[key]
            if key.endswith("_port") and not 1 <= number <= 65535:  # type: ignore[operator]
                problems.append(f"{key}: a port is 1 to 65535 (got {value!r})")
            elif key.endswith(("_s", "_days")) and key not in SIGNED and not all(
                    v >= 0 for v in (number.values() if isinstance(number, dict)
                                     else [number])):  # type: ignore[operator]
                problems.append(f"{key}: must be zero or more (got {value!r})")
            elif key.endswith("_mb") and not 0 < number < math.inf:  # type: ignore[operator]
                problems.append(f"{key}: must be more than zero and finite (got {value!r})")
        if problems:
            raise ValueError("bad setting(s): " + "; ".join(problems))
        config = cls(**checked)  # type: ignore[arg-type]
        from models.alerts import Policy

        Policy.from_settings(config.alert_priorities, config.alert_sla)  # raises naming the key
        return config

    @classmethod
    def load(cls, file: Path | None = None, **overrides: object) -> Config:
        """Defaults, then ``file`` (TOML, or the JSON a supervisor wrote),
        then non-None ``overrides``."""
        data: dict[str, object] = {}
        if file is not None:
            text = Path(file).read_text(encoding="utf-8")
            data = json.loads(text) if str(file).endswith(".json") else tomllib.loads(text)
        data.update({k: v for k, v in overrides.items() if v is not None})
        return cls.from_mapping(data)
