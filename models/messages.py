"""The bus contract: every message that crosses a ZeroMQ socket.

Each kind is a msgspec Struct tagged by its ``schema`` name and carrying a
``version``, so a receiver can reject what it does not understand instead of
guessing (unknown fields are an error, never silently dropped). Bodies are
MessagePack. Positions always travel as columnar batches (numpy arrays
serialised as raw little-endian bytes) so that 100k fixes cost one message,
not 100k.

Topics are the first frame on the bus; the body's ``schema`` repeats the
kind so a body can be validated on its own (e.g. in the event log).
"""

from __future__ import annotations

from typing import Literal

import msgspec
import numpy as np

from models.usage import UsageEntry, UsageFilter

SCHEMA_VERSION = 1
Source = Literal["live", "replay", "sim"]

# Largest body a subscriber or the engine's command socket will decode; a
# bigger frame is rejected (and counted) before msgspec sees it.
MAX_BODY_BYTES = 64 * 1024 * 1024

# Per-fix flag bits (FixBatch.flags / PositionBatch.flags).
FLAG_SOS = 1 << 0
FLAG_BAD_POSITION = 1 << 1  # the device sent no usable position (e.g. SOS with 0,0)
FLAG_LOW_BATTERY = 1 << 2  # the device says so, or its battery is under 15 %
FLAG_FALL = 1 << 3  # a watch's fall-detection alarm
FLAG_REMOVED = 1 << 4  # a watch taken off the wrist


class Message(
    msgspec.Struct, tag_field="schema", forbid_unknown_fields=True, kw_only=True, frozen=True
):
    """Envelope shared by every bus body.

    ``seq`` is per publisher (``origin``) and gap-free: a subscriber that sees
    a jump knows it missed something and must resync from a snapshot.
    """

    version: int = SCHEMA_VERSION
    source: Source = "live"
    seq: int = 0
    ts: float = 0.0
    origin: str = ""


# --------------------------------------------------------------------- positions


class FixBatch(Message, tag="fix.batch"):
    """Validated device fixes from the gateway, one column per field.

    ``device_ids`` is a list (strings do not pack into an array); every other
    column is an encoded numpy array of the same length (see ``Columns``).
    ``readers`` names the tag reader behind each fix ("" for a fix from GPS or
    the carrier); a batch without tag reads leaves it empty, so it costs
    nothing, and bodies from before it existed still decode.
    """

    device_ids: list[str]
    t: bytes  # float64 epoch seconds (device time)
    lat: bytes  # float64 WGS84
    lon: bytes  # float64 WGS84
    speed: bytes  # float32 m/s
    bearing: bytes  # float32 degrees
    accuracy: bytes  # float32 metres
    battery: bytes  # int8 percent, -1 unknown
    flags: bytes  # uint8 FLAG_* bits
    protocol: str = "osmand"
    readers: list[str] = []  # empty, or one reader id ("" for none) per fix
    # Where the batch sits in the gateway's journal (``console.journal``):
    # its epoch and gap-free number there; 0 when the journal refused it.
    journal: str = ""
    journal_seq: int = 0


class PositionBatch(Message, tag="pos.batch"):
    """The engine's live positions after filtering, by child slot.

    Slots index the ``children`` list of the last snapshot; a slot beyond it
    means the subscriber's roster is stale and it must resync.
    """

    slots: bytes  # uint32
    t: bytes  # float64
    lat: bytes  # float64
    lon: bytes  # float64
    inside: bytes  # uint8, 1 when the child is inside any safety zone
    flags: bytes  # uint8


# ----------------------------------------------------------------------- alerts

# Lost signal, not arrived and not departed come with the timetable services.
AlertKind = Literal["sos", "fall", "removed", "zone_exit", "low_battery", "not_arrived",
                    "not_departed", "lost_signal", "unusual_movement"]
AlertState = Literal["new", "acknowledged", "in_progress", "on_hold", "dispatched", "resolved"]


class AlertView(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, frozen=True):
    """What a console needs to show one alert: pseudonymous by design.

    ``version`` goes up with every change; a command names the version its
    sender saw, so two operators acting on one alert cannot both win.
    ``ack_due`` and ``close_due`` are the SLA deadlines (epoch s) the engine
    computed, so consoles count down without knowing the SLA settings.
    """

    id: int
    kind: AlertKind
    priority: int  # 1 = most urgent
    state: AlertState
    child_token: str
    child_slot: int
    device_id: str
    lat: float
    lon: float
    place: str
    opened_at: float
    position_is_last_known: bool = False
    zone: str = ""
    acked_by: str = ""
    acked_at: float = 0.0
    # The child's breadcrumb: the tag reader that last saw them before the
    # alert, and when; ``position_from_reader`` when the alert's position is
    # that reader's (the child's latest fix was the tag read).
    last_reader: str = ""
    last_reader_at: float = 0.0
    position_from_reader: bool = False
    version: int = 1
    owner: str = ""
    count: int = 1  # triggers folded into this alert (the device pressed again)
    last_trigger_at: float = 0.0
    hold_reason: str = ""
    hold_until: float = 0.0
    dispatched_to: str = ""  # police | fire
    dispatch_ref: str = ""
    outcome: str = ""
    resolved_at: float = 0.0
    steps: list[str] = []  # procedure steps ticked or skipped
    last_note: str = ""
    last_actor: str = ""
    updated_at: float = 0.0
    ack_due: float = 0.0
    close_due: float = 0.0
    breaches: int = 0  # models.alerts.BREACH_* bits: SLAs missed (escalated)
    escalated_at: float = 0.0
    battery: int = -1  # the device's last battery %, -1 unknown
    battery_trend: float = 0.0  # percent per hour (negative: draining), 0 unknown
    device_kind: str = ""  # watch | phone | tag, from the registry (not stored with the alert)
    saved: bool = True  # False: published, but the store has not taken it yet


class AlertOpened(Message, tag="alert.opened"):
    alert: AlertView


class AlertUpdated(Message, tag="alert.updated"):
    alert: AlertView
    action: str
    actor: str


# ---------------------------------------------------------------------- cameras

CameraState = Literal["connecting", "live", "stalled", "offline"]


class CamStatus(Message, tag="cam.status"):
    """A camera's stream went up or down (debounced by the media relay)."""

    camera_id: int
    state: CameraState
    detail: str = ""


# ---------------------------------------------------------------------- gateway


class UnregisteredView(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, frozen=True):
    device_id: str
    protocol: str
    first_seen: float
    last_seen: float
    attempts: int


class UnregisteredSeen(Message, tag="gw.unregistered"):
    """Device ids the gateway refused lately, most recent first, for the
    admin to register (or to chase)."""

    devices: list[UnregisteredView]


# ------------------------------------------------------------------- services


class ZoneRegistry(Message, tag="zone.registry"):
    """Every safety zone, after an admin changed one: consoles redraw them."""

    zones: list[ZoneView]


class ZoneCounts(Message, tag="zone.counts"):
    """Per zone (``zone_ids``), how many children are inside and how many
    are uncertain (their accuracy circle crosses the fence); once a second."""

    zone_ids: list[int]
    inside: list[int]
    uncertain: list[int]


class RosterChanged(Message, tag="roster.changed"):
    """Children or devices were enrolled or removed while the system runs:
    consoles take a fresh snapshot (slots are appended, never reused)."""

    children: int  # slots the engine now has


NoticeState = Literal["sent", "retrying", "dead"]


class NoticeStatus(Message, tag="notice.status"):
    """A guardian's notice changed delivery state (the outbox in the store
    is the truth; this tells consoles at once)."""

    notice_id: int
    child_token: str
    kind: str
    zone: str
    state: NoticeState
    attempts: int
    error: str = ""


# ------------------------------------------------------------------ heartbeats


class Heartbeat(Message, tag="sys.heartbeat"):
    """Sent once a second by every publisher; carries its last ``seq`` so a
    subscriber notices a gap even when the lost message was the last one."""

    last_seq: int
    stats: dict[str, float] = {}


# ------------------------------------------------------------ request / reply


class ZoneView(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, frozen=True):
    """A safety zone as consoles draw it: a circle (``shape`` empty) or a
    polygon (``shape``: its GeoJSON geometry, WGS84)."""

    id: int
    name: str
    kind: str
    lat: float
    lon: float
    radius_m: float
    shape: str = ""
    hours: str = ""  # "07:00-20:00"; empty: always watched
    district: str = ""
    version: int = 1


class ReaderView(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, frozen=True):
    """An electronic-tag reader, drawn on the map with its range."""

    id: str
    name: str
    lat: float
    lon: float
    range_m: float


class CameraView(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, frozen=True):
    """A CCTV camera as consoles rank and show it (``models.cameras.CameraLike``)."""

    id: int
    name: str
    lat: float
    lon: float
    direction_deg: float | None
    fov_deg: float
    range_m: float
    ptz: bool
    status: str = "unknown"
    # Whether the registry has a stream URL for it (the URL itself stays in
    # the store: consoles reach cameras through the relay, never directly).
    has_stream: bool = True


class SnapshotRequest(Message, tag="req.snapshot"):
    pass


class Snapshot(Message, tag="rep.snapshot"):
    """The engine's whole live state; ``seq`` is the engine's publish sequence
    at the moment it was taken, so the receiver drops updates with a lower or
    equal seq and applies the rest (zguide's Clone pattern)."""

    children: list[str]  # child token per slot
    positions: PositionBatch
    alerts: list[AlertView]
    zones: list[ZoneView]
    readers: list[ReaderView] = []
    cameras: list[CameraView] = []
    last_readers: dict[int, str] = {}  # child slot -> the tag reader that last saw them


class AlertCommand(Message, kw_only=True):
    """An operator's action on one alert: the session it comes from, the
    alert, and the alert's version as the sender saw it."""

    token: str
    alert_id: int
    alert_version: int  # AlertView.version as the sender saw it
    note: str = ""


class AckAlert(AlertCommand, tag="cmd.ack"):
    pass


class TakeAlert(AlertCommand, tag="cmd.take"):
    """The sender becomes the alert's owner (a supervisor may take anyone's)."""


class AssignAlert(AlertCommand, tag="cmd.assign", kw_only=True):
    user: str


class HoldAlert(AlertCommand, tag="cmd.hold", kw_only=True):
    reason: str
    until: float = 0.0  # epoch s; 0 = the default hold


class ResumeAlert(AlertCommand, tag="cmd.resume"):
    pass


class DispatchAlert(AlertCommand, tag="cmd.dispatch", kw_only=True):
    target: str  # police | fire
    reference: str


class ResolveAlert(AlertCommand, tag="cmd.resolve", kw_only=True):
    outcome: str


class ReopenAlert(AlertCommand, tag="cmd.reopen"):
    pass


class MarkStep(AlertCommand, tag="cmd.step", kw_only=True):
    """A procedure step ticked, or skipped (``note`` says why)."""

    step: str
    skipped: bool = False


class AddNote(AlertCommand, tag="cmd.note"):
    pass


class SignIn(Message, tag="req.signin"):
    user: str
    password: str
    console: str = ""  # the workstation, for the record


class SignOut(Message, tag="cmd.signout"):
    token: str


class SignedIn(Message, tag="rep.signin", kw_only=True):
    ref: int = 0
    token: str
    user: str
    roles: list[str]
    expires_at: float
    # Lets this console's viewers pull camera streams from the media relay
    # (console.media.tokens); it expires with the session.
    media_token: str = ""


class AlertDetailRequest(Message, tag="req.alert"):
    token: str
    alert_id: int


class HistoryEntry(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """One append-only line of an alert's history (``alert_actions``): who,
    when, why (the note), and for a repeated trigger where the child was."""

    action: str
    actor: str
    at: float
    note: str = ""
    detail: str = ""
    lat: float | None = None
    lon: float | None = None


class AlertDetail(Message, tag="rep.alert", kw_only=True):
    """One alert with its whole history and its child's recent trail."""

    ref: int = 0
    alert: AlertView
    history: list[HistoryEntry]
    trail_t: bytes = b""  # float64, the last 15 minutes of fixes, oldest first
    trail_lat: bytes = b""
    trail_lon: bytes = b""


class AlertsRequest(Message, tag="req.alerts"):
    """Alerts for a script or a report: unresolved ones, or all since ``since``."""

    token: str
    open_only: bool = True
    since: float = 0.0
    limit: int = 1000


class AlertList(Message, tag="rep.alerts", kw_only=True):
    ref: int = 0
    alerts: list[AlertView]


class StaffLoad(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, frozen=True):
    user: str
    roles: list[str]
    signed_in_at: float
    open_alerts: int


class SessionCheck(Message, tag="req.session"):
    """Is this console's session still live? Every signed-in role may ask;
    the answer is ``CommandReply`` ok, or the refusal that ends the session
    at the console (an account disabled, a sign-out elsewhere) before the
    operator's next command would have found out."""

    token: str


class ShiftRequest(Message, tag="req.shift"):
    """What the supervisor's panel shows: every alert of the shift and who is on."""

    token: str
    since: float


class ShiftReport(Message, tag="rep.shift", kw_only=True):
    ref: int = 0
    alerts: list[AlertView]
    staff: list[StaffLoad]


class RecordEvidence(Message, tag="cmd.evidence"):
    """An operator saved a frame from a camera as evidence for an alert."""

    token: str
    alert_id: int | None
    camera_id: int
    path: str
    kind: Literal["snapshot", "clip"] = "snapshot"


class ReloadCameras(Message, tag="cmd.cameras"):
    """The camera registry changed in the store: the engine reloads it and
    tells every console."""

    token: str


class CameraRegistry(Message, tag="cam.registry"):
    """The whole camera registry, after a change (engine-published, in seq)."""

    cameras: list[CameraView]


class CommandReply(Message, tag="rep.command"):
    """The answer to every command. ``ref`` is the request's ``seq``, so a
    console with several requests out knows which one this answers; ``code``
    names the rule that refused it (forbidden, stale, illegal, ...)."""

    ok: bool
    error: str = ""
    code: str = ""
    ref: int = 0
    alert: AlertView | None = None


# ----------------------------------------------------------- camera registry admin
# An admin's console lists, edits and imports cameras through the engine, which
# checks every edit (``db.camera_admin.validate``) and is the only writer.

MAX_IMPORT_BYTES = 32 * 1024 * 1024  # a city registry CSV is a few MB
MAX_IMPORT_PROBLEMS = 200  # problems one import result lists


class CameraRecord(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, frozen=True):
    """A camera as stored, as the admin's table shows and edits it (with its
    stream URL, which ``CameraView`` leaves out)."""

    id: int
    name: str
    lat: float
    lon: float
    agency: str
    purpose: str
    address: str
    direction_deg: float | None  # None: unknown, ranked as omnidirectional
    fov_deg: float
    range_m: float
    ptz: bool
    stream_url: str
    status: str


class CameraEditRecord(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, frozen=True):
    """What an admin wants a camera to be; ``id`` None adds a camera."""

    id: int | None
    name: str
    lat: float
    lon: float
    agency: str
    purpose: str
    address: str
    direction_deg: float | None
    fov_deg: float
    range_m: float
    ptz: bool
    stream_url: str
    status: str


class CameraListRequest(Message, tag="req.cameras"):
    """Every camera in the store, for the admin's table."""

    token: str


class CameraRows(Message, tag="rep.cameras", kw_only=True):
    ref: int = 0
    rows: list[CameraRecord]


class SaveCamera(Message, tag="cmd.camera"):
    """Store one camera edit; refused with ``bad_value`` and every problem."""

    token: str
    edit: CameraEditRecord


class CameraSaved(Message, tag="rep.camera", kw_only=True):
    ref: int = 0
    row: CameraRecord


class ImportCameras(Message, tag="cmd.import_cameras"):
    """``childsafe import cameras`` from a console: the file's bytes (at most
    ``MAX_IMPORT_BYTES``), its name for the report, and whether to write the
    valid rows when some are rejected (else all or nothing)."""

    token: str
    filename: str
    data: bytes
    allow_partial: bool = False


class CameraImportResult(Message, tag="rep.import_cameras", kw_only=True):
    """What an import did. ``problems`` lists the first ``MAX_IMPORT_PROBLEMS``
    rejected rows ("line N: reason"), or the one reason the file as a whole
    could not be read (``unreadable``); ``rejected`` counts them all."""

    ref: int = 0
    committed: bool
    accepted: int  # valid rows
    rejected: int
    problems: list[str]
    message: str  # the outcome in one sentence
    unreadable: bool = False
    filename: str = ""
    encoding: str = ""
    rows_read: int = 0
    imported: int = 0  # new cameras written
    updated: int = 0  # known cameras refreshed
    unknown_headers: list[str] = []
    missing_headers: list[str] = []  # optional ones: defaults used
    allow_partial: bool = False


# ------------------------------------------------------------------- privacy
# Children are tokens everywhere; a name, the guardians' contacts or a
# history are shown only through a reveal the engine granted (an open alert
# the requester owns, or a supervisor's approval), and every reveal,
# disclosure and usage-log export is written to the location-usage log
# (``db.usage_log``). Auditors read that log and nothing live.

MAX_TRAIL_S = 24 * 3600.0  # the longest history one reveal shows


class RevealRequest(Message, tag="cmd.reveal", kw_only=True):
    """Ask to see a child's identity (and history). With ``alert_id`` of an
    open alert about that child which the requester owns, granted at once
    for ``reveal_s``; otherwise it waits for a supervisor's approval."""

    token: str
    child: str  # the child's pseudonymous token
    reason: str
    alert_id: int = 0


class RevealDecision(Message, tag="cmd.decide_reveal", kw_only=True):
    """A supervisor approves or refuses a pending reveal (never their own)."""

    token: str
    reveal_id: int
    approve: bool
    note: str = ""


class RevealView(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, frozen=True):
    id: int
    child: str
    user: str
    reason: str
    alert_id: int
    state: Literal["pending", "granted", "refused", "expired"]
    requested_at: float
    decided_by: str = ""
    decided_at: float = 0.0
    expires_at: float = 0.0


class RevealsRequest(Message, tag="req.reveals", kw_only=True):
    """A supervisor's approval queue (pending ones), or a user's own reveals."""

    token: str
    pending_only: bool = True


class RevealList(Message, tag="rep.reveals", kw_only=True):
    ref: int = 0
    reveals: list[RevealView]


class RevealReply(Message, tag="rep.reveal", kw_only=True):
    """What became of a reveal request or decision."""

    ref: int = 0
    reveal: RevealView


class ChildRequest(Message, tag="req.child", kw_only=True):
    """A child's identity under a granted reveal, with ``trail_s`` seconds of
    history (0: none). Refused without a live reveal; each answer is logged."""

    token: str
    child: str
    trail_s: float = 0.0


class GuardianView(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, frozen=True):
    name: str
    relation: str = ""
    phone: str = ""
    email: str = ""


class ChildDetail(Message, tag="rep.child", kw_only=True):
    ref: int = 0
    child: str
    name: str
    guardians: list[GuardianView]
    services: list[str]  # consented to, in force
    reveal_id: int
    expires_at: float  # the console forgets all this then
    trail_t: bytes = b""  # float64, oldest first
    trail_lat: bytes = b""
    trail_lon: bytes = b""


class DiscloseRequest(Message, tag="cmd.disclose", kw_only=True):
    """Ask to disclose an emergency alert's child to police or fire (§29);
    it waits for a supervisor's approval."""

    token: str
    alert_id: int
    agency: Literal["police", "fire"]
    reason: str


class DisclosureDecision(Message, tag="cmd.decide_disclosure", kw_only=True):
    """A supervisor (not the requester) approves or refuses a disclosure; an
    approval records how the guardian was told (§19(3))."""

    token: str
    disclosure_id: int
    approve: bool
    guardian_notice: str = ""


class DisclosureView(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, frozen=True):
    id: int
    alert_id: int
    child: str
    agency: str
    reason: str
    requested_by: str
    requested_at: float
    state: Literal["pending", "approved", "refused"]
    decided_by: str = ""
    decided_at: float = 0.0
    guardian_notice: str = ""
    guardian_notified_at: float = 0.0


class DisclosuresRequest(Message, tag="req.disclosures", kw_only=True):
    token: str
    pending_only: bool = True


class DisclosureList(Message, tag="rep.disclosures", kw_only=True):
    ref: int = 0
    disclosures: list[DisclosureView]


class DisclosureReply(Message, tag="rep.disclosure", kw_only=True):
    ref: int = 0
    disclosure: DisclosureView


class UsageRequest(Message, tag="req.usage", kw_only=True):
    """An auditor's page of the location-usage log; ``export`` marks a
    request whose rows leave the console (logged as an export)."""

    token: str
    filter: UsageFilter = UsageFilter()
    export: bool = False


class UsageRows(Message, tag="rep.usage", kw_only=True):
    ref: int = 0
    rows: list[UsageEntry]
    verified: bool  # the chain checked out when these were read
    problem: str = ""  # the first broken record, in words


# ---- child card
# An operator's card of one child, pseudonymous like the map: the day's
# timetable and how it went, the guardians' notices and whether they went,
# the device's state and the recent trail (``console.engine.child_card``).
# Each card that carries a trail or notices is a use of the child's history,
# written to the location-usage log with the reply.

MAX_CARD_TRAIL_S = 3600.0  # the longest trail one card carries
CARD_NOTICES = 20  # the child's latest notices one card lists


class ChildCardRequest(Message, tag="req.child_card", kw_only=True):
    """The card of ``child`` (its token) with ``trail_s`` seconds of trail
    (at most ``MAX_CARD_TRAIL_S``; 0: none)."""

    token: str
    child: str
    trail_s: float = 900.0


class CardSlot(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, frozen=True):
    """One expectation of the child's day, planned and as it went.

    ``arrived_at`` / ``departed_at`` are when the arrival or departure was
    seen (from its notice; 0 when not seen, or when no notice was made, as
    for a child without routine consent). ``alerted``: the evaluator's open
    flags on it (not_arrived, not_departed); ``alert_ids``: the open alerts
    about this zone for the child."""

    zone: str
    kind: str  # school | academy
    start_t: float
    end_t: float
    state: Literal["pending", "arrived", "departed"]
    inside: bool = False
    arrived_at: float = 0.0
    departed_at: float = 0.0
    alerted: list[str] = []
    alert_ids: list[int] = []


CardNoticeState = Literal["pending", "retrying", "sent", "dead"]


class CardNotice(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, frozen=True):
    """One guardian notice of the child and how its delivery went (no address)."""

    id: int
    kind: str
    zone: str
    event_at: float
    channel: str  # email | sms | record
    state: CardNoticeState
    attempts: int = 0
    sent_at: float = 0.0
    next_at: float = 0.0
    error: str = ""


class ChildCard(Message, tag="rep.child_card", kw_only=True):
    """The operator's card of one child. ``day_t0`` is the local midnight of
    the engine's day (timetable times are epoch seconds; a console draws
    them against it whatever its own time zone). ``tracked`` False: no
    consent in force, so nothing of where the child is or was is given."""

    ref: int = 0
    child: str
    profile: str
    at: float
    day_t0: float
    tracked: bool = True
    zones: list[str] = []  # the zones the child is inside now
    uncertain: list[str] = []  # zones whose fence the last fix's accuracy circle crosses
    slots: list[CardSlot] = []
    notices: list[CardNotice] = []  # newest first
    last_fix_t: float = 0.0  # 0: never seen
    battery: int = -1  # percent, -1 unknown
    battery_trend: float = 0.0  # percent per hour (negative: draining), 0 unknown
    lost_signal: bool = False
    speed_kmh: float = 0.0  # the last measured step
    alert_ids: list[int] = []  # the child's open alerts
    trail_s: float = 0.0  # the trail's window
    trail_t: bytes = b""  # float64, oldest first
    trail_lat: bytes = b""
    trail_lon: bytes = b""


# ---- admin: zones and enrolment
# An admin's console draws, edits, imports and exports safety zones and
# enrols children through the engine (``console.engine.admin_services``),
# the only writer, which checks every field and answers with every problem
# at once. Zones come back to every console as ``ZoneRegistry`` once the
# engine has rebuilt its geofence. Children's names travel only in these
# replies, to admins (who enrol them); everything published stays
# pseudonymous.

MAX_LISTED_CHILDREN = 5000  # rows one ChildRows carries; a filter finds the rest


class SaveZone(Message, tag="cmd.save_zone", kw_only=True):
    """Add a zone (``zone_id`` None) or change one. The shape is
    ``geometry`` (GeoJSON Polygon or Point, WGS84 [lon, lat]; a Point needs
    ``radius_m``), or a circle's ``lat``/``lon`` and ``radius_m``; on an
    edit, no shape keeps the stored one and ``radius_m`` alone resizes a
    circle. ``district`` empty: derived from where the zone lies.
    ``zone_version`` is the version the admin edited (0: no check), so an edit of
    a zone someone changed since is refused as stale instead of undoing it."""

    token: str
    zone_id: int | None = None
    name: str
    kind: str
    hours: str = ""
    district: str = ""
    geometry: str = ""
    lat: float | None = None
    lon: float | None = None
    radius_m: float | None = None
    zone_version: int = 0


class ZoneSaved(Message, tag="rep.save_zone", kw_only=True):
    ref: int = 0
    zone: ZoneView
    changed: bool = True  # False: the edit matched the stored zone (no new version)


class RemoveZone(Message, tag="cmd.remove_zone", kw_only=True):
    """Delete a zone; refused while children, readers or timetables use it
    (the refusal names them) or when it changed since ``zone_version`` (0: no check)."""

    token: str
    zone_id: int
    zone_version: int = 0


class ImportZones(Message, tag="cmd.import_zones", kw_only=True):
    """A GeoJSON FeatureCollection (at most ``MAX_IMPORT_BYTES``), all or nothing."""

    token: str
    filename: str
    data: bytes


class ZoneImportResult(Message, tag="rep.import_zones", kw_only=True):
    """What a zone import did; with ``problems`` (the first
    ``MAX_IMPORT_PROBLEMS`` of ``problem_count``, each naming its feature)
    nothing was written."""

    ref: int = 0
    committed: bool
    message: str  # the outcome in one sentence
    filename: str = ""
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    problems: list[str] = []
    problem_count: int = 0


class ExportZones(Message, tag="req.export_zones", kw_only=True):
    token: str


class ZoneExport(Message, tag="rep.export_zones", kw_only=True):
    """Every zone as a FeatureCollection that ``ImportZones`` takes back."""

    ref: int = 0
    geojson: str
    zones: int


class EnrolledChild(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, frozen=True):
    """A child as the admin's enrolment table shows it (with the name)."""

    token: str
    name: str
    school: str
    profile: str
    devices: list[str]  # device ids
    device_kinds: list[str]  # watch | phone | tag, one per device
    guardians: list[str]  # each guardian's relation ("" when not given)
    consent: str  # the services consented to now, or "no consent" (not tracked)


class ChildrenRequest(Message, tag="req.enrolled", kw_only=True):
    """Enrolled children, by enrolment order: those at ``school`` (a zone
    name; empty: all) whose token, name or device id contains ``search``,
    at most ``limit`` (up to ``MAX_LISTED_CHILDREN``)."""

    token: str
    school: str = ""
    search: str = ""
    limit: int = MAX_LISTED_CHILDREN


class ChildRows(Message, tag="rep.enrolled", kw_only=True):
    ref: int = 0
    rows: list[EnrolledChild]
    total: int  # children matching; more than the rows when the limit cut the list


class EnrolChild(Message, tag="cmd.enrol", kw_only=True):
    """Enrol a child at a school zone, with a first device if ``device_id``
    is given (both or neither are written). Guardians and consent come with
    the roster import: until consent is given the child is not tracked."""

    token: str
    name: str
    school: str
    profile: str = "walking"
    device_id: str = ""
    device_kind: str = ""


class RemoveChild(Message, tag="cmd.unenrol", kw_only=True):
    """End a child's enrolment (refused while one of its alerts is unresolved)."""

    token: str
    child: str


class AddDevice(Message, tag="cmd.add_device", kw_only=True):
    token: str
    child: str
    device_id: str
    kind: str


class RemoveDevice(Message, tag="cmd.remove_device", kw_only=True):
    token: str
    device_id: str


class ChildSaved(Message, tag="rep.enrol", kw_only=True):
    """The child as it is now, after an enrolment or a device change."""

    ref: int = 0
    child: EnrolledChild
    message: str


class ChildRemoved(Message, tag="rep.unenrol", kw_only=True):
    ref: int = 0
    child: str
    devices: list[str]  # unregistered with the enrolment
    slots: int  # timetable slots deleted
    message: str


class ImportRoster(Message, tag="cmd.import_roster", kw_only=True):
    """A school roster CSV (at most ``MAX_IMPORT_BYTES``, UTF-8 or CP949),
    all or nothing; ``school`` (a zone name) fills an empty school column."""

    token: str
    filename: str
    data: bytes
    school: str = ""


class RosterImportResult(Message, tag="rep.import_roster", kw_only=True):
    """What a roster import did; with ``problems`` ("line N: reason", the
    first ``MAX_IMPORT_PROBLEMS`` of ``problem_count``) nothing was written."""

    ref: int = 0
    committed: bool
    message: str
    filename: str = ""
    encoding: str = ""
    enrolled: int = 0
    guardians_added: int = 0
    guardians_known: int = 0
    problems: list[str] = []
    problem_count: int = 0


# --------------------------------------------------------------------- training


class ReplayClock(Message, tag="replay.clock"):
    """The training session's time (``models.replay_clock``): replayed time
    ``t`` at the moment this was sent, moving at ``speed`` (0: paused, or a
    seek fast-forwarding, when time moves only with these messages). Only
    the training bus carries it; the training engine and trainee consoles
    run their clocks on it, so deadlines and SLA countdowns follow the replay."""

    t: float
    speed: float
    # A seek back restarts the session's time (the one case it goes
    # backwards): each restart numbers a new epoch.
    epoch: int = 0
    title: str = ""  # the scenario's title or the period, for trainees' banners


class ReplayMark(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, frozen=True):
    """One mark on the trainer's timeline: an alert or a scripted incident."""

    t: float
    kind: str
    label: str = ""


ReplayAction = Literal["status", "play", "pause", "speed", "seek", "step", "stop"]


class ReplayControl(Message, tag="cmd.replay", kw_only=True):
    """The trainer window's command to the replay session
    (``console.training.session``), over its own control socket; ``token``
    is a trainer's session on the training engine."""

    token: str
    action: ReplayAction
    speed: float = 1.0  # for "speed" (and "play"): 0.25 .. 16
    t: float = 0.0  # for "seek": a time inside the session's range


class ReplayStatus(Message, tag="rep.replay", kw_only=True):
    """Where the replay stands, the answer to every ``ReplayControl``."""

    ref: int = 0
    ok: bool = True
    error: str = ""
    title: str = ""  # the scenario's title, or the replayed period
    scenario: str = ""  # the scenario id ("" for a recorded period)
    t0: float
    t1: float
    t: float
    speed: float
    playing: bool
    seeking: bool = False  # fast-forwarding to a seek's target
    marks: list[ReplayMark] = []
    skipped: int = 0  # recorded messages that could not be decoded (counted, left out)


class CamerasViewed(Message, tag="cmd.viewed", kw_only=True):
    """A console opened these cameras for an alert: written in the alert's
    history (who looked at which cameras, and when: the audit of CCTV use,
    and the trainer's "time to open cameras")."""

    token: str
    alert_id: int
    camera_ids: list[int]


Published = (FixBatch | PositionBatch | AlertOpened | AlertUpdated | CamStatus | CameraRegistry
             | UnregisteredSeen | ZoneRegistry | ZoneCounts | RosterChanged | NoticeStatus
             | Heartbeat | ReplayClock)
Request = (SnapshotRequest | AckAlert | TakeAlert | AssignAlert | HoldAlert | ResumeAlert
           | DispatchAlert | ResolveAlert | ReopenAlert | MarkStep | AddNote | SignIn | SignOut
           | AlertDetailRequest | AlertsRequest | ShiftRequest | SessionCheck | RecordEvidence
           | ReloadCameras
           | CameraListRequest | SaveCamera | ImportCameras | RevealRequest | RevealDecision
           | RevealsRequest | ChildRequest | DiscloseRequest | DisclosureDecision
           | DisclosuresRequest | UsageRequest | ChildCardRequest
           | SaveZone | RemoveZone | ImportZones | ExportZones | ChildrenRequest
           | EnrolChild | RemoveChild | AddDevice | RemoveDevice | ImportRoster
           | CamerasViewed | ReplayControl)
Reply = (Snapshot | CommandReply | SignedIn | AlertDetail | AlertList | ShiftReport | CameraRows
         | CameraSaved | CameraImportResult | RevealList | RevealReply | ChildDetail
         | DisclosureList | DisclosureReply | UsageRows | ChildCard
         | ZoneSaved | ZoneImportResult | ZoneExport | ChildRows | ChildSaved
         | ChildRemoved | RosterImportResult | ReplayStatus)
AnyMessage = Published | Request | Reply

_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(AnyMessage)


class BadMessage(ValueError):
    """A body that is too large, not MessagePack, or not a known schema."""


def encode(msg: AnyMessage) -> bytes:
    return _encoder.encode(msg)


def decode(body: bytes) -> AnyMessage:
    if len(body) > MAX_BODY_BYTES:
        raise BadMessage(f"body of {len(body)} bytes exceeds {MAX_BODY_BYTES}")
    try:
        msg = _decoder.decode(body)
    except msgspec.DecodeError as exc:
        raise BadMessage(str(exc)) from exc
    if msg.version != SCHEMA_VERSION:
        raise BadMessage(f"{type(msg).__name__} version {msg.version} not supported")
    return msg


def topic_of(msg: AnyMessage) -> bytes:
    """The bus topic for a message: its schema tag."""
    return type(msg).__struct_config__.tag.encode("ascii")  # type: ignore[union-attr]


# --------------------------------------------------------------- column helpers

_DTYPES = {
    "t": "<f8",
    "lat": "<f8",
    "lon": "<f8",
    "speed": "<f4",
    "bearing": "<f4",
    "accuracy": "<f4",
    "battery": "i1",
    "flags": "u1",
    "slots": "<u4",
    "inside": "u1",
}


def pack(name: str, values: np.ndarray | list[float] | list[int]) -> bytes:
    """Encode one column with the dtype the contract fixes for ``name``."""
    return np.ascontiguousarray(values, dtype=_DTYPES[name]).tobytes()


def unpack(name: str, raw: bytes) -> np.ndarray:
    """Decode one column (a read-only view, no copy)."""
    return np.frombuffer(raw, dtype=_DTYPES[name])


def _unpack_all(batch: FixBatch | PositionBatch, names: tuple[str, ...]
                ) -> dict[str, np.ndarray]:
    """Every column, or BadMessage for one whose bytes are not whole values."""
    cols = {}
    for name in names:
        raw = getattr(batch, name)
        if len(raw) % np.dtype(_DTYPES[name]).itemsize:
            raise BadMessage(f"{topic_of(batch).decode()} column {name} has {len(raw)} bytes, "
                             f"not whole {_DTYPES[name]} values")
        cols[name] = unpack(name, raw)
    return cols


def fix_columns(batch: FixBatch) -> dict[str, np.ndarray]:
    cols = _unpack_all(batch, ("t", "lat", "lon", "speed", "bearing", "accuracy", "battery",
                               "flags"))
    n = len(batch.device_ids)
    for name, arr in cols.items():
        if len(arr) != n:
            raise BadMessage(f"fix.batch column {name} has {len(arr)} values for {n} devices")
    if batch.readers and len(batch.readers) != n:
        raise BadMessage(f"fix.batch readers has {len(batch.readers)} values for {n} devices")
    return cols


def position_columns(batch: PositionBatch) -> dict[str, np.ndarray]:
    cols = _unpack_all(batch, ("slots", "t", "lat", "lon", "inside", "flags"))
    n = len(cols["slots"])
    for name, arr in cols.items():
        if len(arr) != n:
            raise BadMessage(f"pos.batch column {name} has {len(arr)} values for {n} slots")
    return cols


def to_jsonable(msg: AnyMessage) -> dict[str, object]:
    """A JSON-friendly dict of a message, with columns expanded to lists (for
    ``childsafe tap``)."""
    out: dict[str, object] = {"schema": topic_of(msg).decode()}
    out.update(msgspec.to_builtins(msg, builtin_types=(bytes,)))
    for name, value in list(out.items()):
        if isinstance(value, bytes) and name in _DTYPES:
            out[name] = unpack(name, value).tolist()
    if isinstance(msg, Snapshot):
        out["positions"] = {"count": len(unpack("slots", msg.positions.slots))}
    return out
