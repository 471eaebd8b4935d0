"""The "3G watch" protocol: framing, decoding, replies, and fuzzing."""

from __future__ import annotations

import contextlib
import math
import random
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from console.gateway import watch
from console.gateway.intake import Intake
from console.gateway.watch import (
    KMH_MS,
    FrameRejected,
    FrameSplitter,
    decode,
    encode,
    parse_network,
)
from models.fixes import Rejected, Report

NOW = 1_790_000_000.0  # 2026-09-21 14:13:20 UTC
WATCH = "3900512807"
IMEI = "356112090448713"
# date, time, validity, lat, N/S, lon, E/W, km/h, course, altitude, satellites, rssi,
# battery, steps, rolls, status — then cell towers and access points
FOREST = "210926,141000,A,37.544400,N,127.037400,E,7.2,181.5,31.0,9,88,64,2051,3,{status}"
TOWERS = ("2,1,450,5,8801,40561,152,8801,40562,139,"
          "2,sinhak-ap,0a:1b:2c:3d:4e:5f,-61,,66:55:44:33:22:11,-80,18.0")


def ud(kind: str = "UD", status: str = "00000000", fix: str = FOREST, tail: str = TOWERS) -> str:
    return f"{kind},{fix.format(status=status)},{tail}" if tail else \
        f"{kind},{fix.format(status=status)}"


def frame(content: str, mf: str = "3G", device: str = WATCH, index: str | None = None) -> bytes:
    return encode(mf, device, content, index)


# ------------------------------------------------------------------ decoding, valid frames

@pytest.mark.parametrize("kind", ["UD", "UD2", "UD3", "UD_LTE", "UD_WCDMA", "WT"])
def test_location_types_give_one_report(kind: str) -> None:
    msg = decode(frame(ud(kind)), NOW)
    assert (msg.manufacturer, msg.device_id, msg.index, msg.type) == ("3G", WATCH, None, kind)
    assert msg.reply is None and msg.length_ok and msg.alarms == frozenset()
    (r,) = msg.reports
    assert (r.device_id, r.t, r.lat, r.lon) == (WATCH, 1_790_000_000.0 - 200, 37.5444, 127.0374)
    assert r.speed == pytest.approx(7.2 * KMH_MS) and r.bearing == 181.5
    assert (r.battery, r.sos, r.valid) == (64, False, True) and math.isnan(r.accuracy)
    assert msg.battery == 64


def test_cell_towers_and_access_points_are_kept_for_later() -> None:
    cells, wifi = parse_network(decode(frame(ud()), NOW).network)
    assert cells == [(450, 5, 8801, 40561, 152), (450, 5, 8801, 40562, 139)]
    assert wifi == [("0a:1b:2c:3d:4e:5f", -61), ("66:55:44:33:22:11", -80)]
    assert parse_network("1,255,FFFF,FFFF,55C0,3B882A2,132") == ([(65535, 65535, 0x55C0,
                                                                    0x3B882A2, 132)], [])
    assert parse_network("garbage,,") == ([], [])


def test_frame_without_network_tail() -> None:
    (r,) = decode(frame(ud(tail="")), NOW).reports
    assert r.lat == 37.5444


@pytest.mark.parametrize(
    ("position", "expect"),
    [("37.5085,N,126.8875,E", (37.5085, 126.8875)),
     ("33.8688,S,151.2093,E", (-33.8688, 151.2093)),
     ("40.7128,N,74.0060,W", (40.7128, -74.006)),
     ("-9.500000,N,-36.250000,W", (-9.5, -36.25)),  # the sign is kept unless S/W
     ("51.500000,N, 0.127000,", (51.5, 0.127)),  # leading space, no hemisphere
     ("07.125,N,080.500,E", (7.125, 80.5))],
)
def test_hemispheres(position: str, expect: tuple[float, float]) -> None:
    fix = f"210926,141000,A,{position},1,0,0,5,50,70,0,0,{{status}}"
    (r,) = decode(frame(ud(fix=fix, tail="")), NOW).reports
    assert (r.lat, r.lon) == pytest.approx(expect)


def test_index_field_is_mirrored_in_the_reply() -> None:
    msg = decode(frame(ud("AL", "00010000"), mf="ZJ", device=IMEI, index="01c4"), NOW)
    assert msg.index == "01c4" and msg.reports[0].sos
    assert msg.reply == f"[ZJ*{IMEI}*01c4*0002*AL]".encode()


@pytest.mark.parametrize(
    ("content", "reply"),
    [("LK", "LK"), ("LK,4120,7,83", "LK"), ("INIT,01099998888,1,1,DW-01,2,1", "INIT,1"),
     ("TKQ", "TKQ"), ("TKQ2", "TKQ2"), ("PULSE,81", None), ("rcapture", None)],
)
def test_replies(content: str, reply: str | None) -> None:
    msg = decode(frame(content, mf="SG"), NOW)
    assert msg.reports == []
    assert msg.reply == (None if reply is None else frame(reply, mf="SG"))


def test_heartbeat_carries_steps_and_battery() -> None:
    msg = decode(frame("LK,4120,7,83"), NOW)
    assert (msg.steps, msg.battery) == (4120, 83)
    assert decode(frame("LK,0,91"), NOW).battery is None  # two values: ambiguous, ignored


@pytest.mark.parametrize(
    ("status", "alarms"),
    [("00010000", {"sos"}), ("00000001", {"low_battery"}), ("00020000", {"low_battery"}),
     ("00100000", {"removed"}), ("00200000", {"fall"}), ("00400000", {"fall"}),
     ("00110008", {"sos", "removed"}), ("0000", set())],
)
def test_alarm_status_bits(status: str, alarms: set[str]) -> None:
    msg = decode(frame(ud("AL", status)), NOW)
    assert msg.alarms == alarms and msg.reports[0].sos == ("sos" in alarms)
    assert msg.reply == frame("AL")


def test_sos_bit_in_a_location_frame_counts_too() -> None:
    assert decode(frame(ud("UD2", "00010000")), NOW).reports[0].sos


def test_invalid_fix_is_passed_on_as_invalid() -> None:
    fix = FOREST.replace(",A,", ",V,")
    (r,) = decode(frame(ud(fix=fix)), NOW).reports
    assert not r.valid and not r.sos


def test_device_clock_offset() -> None:
    (r,) = decode(frame(ud()), NOW, utc_offset_s=9 * 3600).reports
    assert r.t == 1_790_000_000.0 - 200 - 9 * 3600


def test_voice_frames_are_skipped_and_acknowledged() -> None:
    voice = b"[CS*" + WATCH.encode() + b"*000c*TK,#!AMR}\x01}\x02}\x05\x7f]"
    msg = decode(voice, NOW)
    assert (msg.type, msg.reports, msg.reply) == ("TK", [], f"[CS*{WATCH}*0004*TK,1]".encode())
    jx = b"[ZJ*" + IMEI.encode() + b"*0101*0020*JXTK,0,v1,1,2,#!AMR}\x03\x00\x01]"
    assert decode(jx, NOW).reply == f"[ZJ*{IMEI}*0101*0007*JXTKR,1]".encode()
    assert decode(frame("TK,1"), NOW).reply is None  # the watch acknowledging our voice


def test_hangul_ssid_length_counted_in_characters_is_fine() -> None:
    content = ud(tail="0,1,1,우리집_와이파이,aa:bb:cc:00:11:22,-55")
    raw = frame(content)
    chars = f"{len(content):04X}".encode()
    fixed = raw.replace(raw[15:19], chars, 1)
    msg = decode(fixed, NOW)
    assert msg.length_ok and msg.reports[0].lat == 37.5444


# ------------------------------------------------------------------ SOS is never dropped

@pytest.mark.parametrize(
    "fix",
    ["210926,141000,A,abc,N,127.0,E,0,0,0,0,0,55,0,0,{status}",  # bad latitude
     "210926,141000,V,0.000000,N,0.000000,E,0,0,0,0,0,55,0,0,{status}",  # V at null island
     "991399,141000,A,37.5,N,127.0,E,0,0,0,0,0,55,0,0,{status}",  # impossible date
     "210926,141000,A,37.5,Q,127.0,E,0,0,0,0,0,55,0,0,{status}"],  # bad hemisphere
)
def test_sos_with_a_bad_position_still_gives_an_sos_report(fix: str) -> None:
    msg = decode(frame(ud("AL", "00010000", fix=fix)), NOW)
    (r,) = msg.reports
    assert r.sos and msg.reply == frame("AL")
    intake = Intake(publish=lambda batch: None)
    intake.registered = {WATCH}
    assert intake.accept(r, "watch", now=NOW).accepted  # raised at the last known position


def test_alarm_whose_status_cannot_be_read_fails_safe_as_sos() -> None:
    for content in ["AL,210926,141000,A,37.5,N,127.0,E,0,0,0,0,0,55,0,0,0001x000",
                    "AL,210926,141000", "AL"]:
        msg = decode(frame(content), NOW)
        assert msg.reports[0].sos and msg.alarms == {"unknown"}, content
    (r,) = decode(frame("AL,210926,141000,A,37.5,N,127.0,E,0,0,0,0,0,55,0,0,zz"), NOW).reports
    assert (r.lat, r.lon, r.valid) == (37.5, 127.0, True)  # the position is still good


def test_non_sos_alarm_with_bad_position_is_refused_but_acknowledged() -> None:
    with pytest.raises(FrameRejected) as exc:
        decode(frame(ud("AL", "00000001", fix=FOREST.replace("37.544400", "37.5.44"))), NOW)
    assert exc.value.reason == "bad_coordinate" and exc.value.reply == frame("AL")


def test_truncated_alarm_is_an_sos_only_if_it_may_be_one() -> None:
    whole = frame(ud("AL", "00010000"))
    (r,) = decode(whole[:-30], NOW).reports  # status survived, followed by a comma
    assert r.sos and r.lat == 37.5444
    with pytest.raises(Rejected) as exc:
        decode(frame(ud("AL", "00000001"))[:-30], NOW)
    assert exc.value.reason == "truncated"
    msg = decode(whole[:60], NOW)  # status lost: fail safe, no reply (the watch resends)
    assert msg.reports[0].sos and msg.reply is None


# ------------------------------------------------------------------ malformed frames

@pytest.mark.parametrize(
    ("raw", "reason"),
    [(b"[3G*123*00X1*LK]", "bad_header"), (b"3G*123*0002*LK]", "bad_header"),
     (b"[3G*123*0000*]", "empty_frame"), (b"[3G*123*0004*L K!]", "bad_type"),
     (b"[3G*123*0002*LK", "truncated"), (b"[3G*123*0008*PULSE,7", "truncated"),
     (frame(ud())[:-1], "truncated"),
     (frame("UD,210926,141000,A,37.5,N,127.0,E"), "missing_fields"),
     (frame(ud(fix=FOREST.replace(",A,", ",X,"))), "bad_validity"),
     (frame(ud(fix=FOREST.replace("141000", "14100"))), "bad_time"),
     (frame(ud(fix=FOREST.replace("210926", "310226"))), "bad_time"),
     (frame(ud(fix=FOREST.replace("37.544400", "nan"))), "bad_coordinate"),
     (frame(ud(fix=FOREST.replace("37.544400", "1e5"))), "bad_coordinate"),
     (frame(ud(fix=FOREST.replace("127.037400", "1_27.0"))), "bad_coordinate"),
     (frame(ud(fix=FOREST.replace(",N,", ",E,"))), "bad_hemisphere"),
     (frame(ud(fix=FOREST.replace("7.2,", "fast,"))), "bad_number"),
     (frame(ud(fix=FOREST.replace("181.5", "-3"))), "bad_number"),
     (frame(ud(fix=FOREST.replace(",64,", ",-5,"))), "bad_number"),
     (frame(ud(status="0000G000")), "bad_status"), (frame(ud(status="")), "bad_status")],
)
def test_malformed_frames_are_refused_with_a_reason(raw: bytes, reason: str) -> None:
    with pytest.raises(Rejected) as exc:
        decode(raw, NOW)
    assert exc.value.reason == reason


def test_wrong_length_alone_does_not_cost_a_position() -> None:
    good = frame(ud())
    raw = good.replace(good[14:20], b"*0001*", 1)
    msg = decode(raw, NOW)
    assert not msg.length_ok and msg.reports[0].lat == 37.5444


def test_garbled_heartbeat_is_refused_but_still_answered() -> None:
    with pytest.raises(FrameRejected) as exc:
        decode(frame("LK,12,x,80"), NOW)
    assert exc.value.reason == "bad_number" and exc.value.reply == frame("LK")


# ------------------------------------------------------------------ framing

def feed_all(splitter: FrameSplitter, data: bytes, sizes: list[int]) -> list[bytes]:
    out: list[bytes] = []
    i = 0
    for size in sizes:
        out += splitter.feed(data[i:i + size])
        i += size
    return out + splitter.feed(data[i:])


STREAM = [frame("LK,0,0,90"), frame(ud()), frame(ud("AL", "00010000"), "ZJ", IMEI, "0A0B"),
          b"[CS*" + WATCH.encode() + b"*000c*TK,#!AMR}\x01}\x02}\x05\x7f]", frame("TKQ"),
          frame(ud(tail="1,1,1,[school] guest,aa:bb:cc:00:11:22,-40"))]
VOICE_STUB = b"[CS*" + WATCH.encode() + b"*000c*TK]"
EXPECTED = [f if b"*TK," not in f else VOICE_STUB for f in STREAM]


def test_one_read_with_many_frames() -> None:
    s = FrameSplitter()
    assert s.feed(b"".join(STREAM)) == EXPECTED
    assert (s.buffered, s.garbage, s.skipped_binary) == (0, 0, 13)


def test_every_split_point() -> None:
    data = b"".join(STREAM)
    for cut in range(1, len(data)):
        assert feed_all(FrameSplitter(), data, [cut]) == EXPECTED, cut


def test_byte_by_byte() -> None:
    data = b"".join(STREAM)
    assert feed_all(FrameSplitter(), data, [1] * len(data)) == EXPECTED


def test_garbage_between_frames_is_skipped_and_counted() -> None:
    s = FrameSplitter()
    out = s.feed(b"\r\nhello" + STREAM[0] + b"[[[x]]\x00\xff[3G*" + STREAM[1] + b"\n")
    assert out == [STREAM[0], STREAM[1]]
    assert s.garbage == 7 + 12 + 1


def test_unbalanced_bracket_in_ssid_with_a_correct_length() -> None:
    raw = frame(ud(tail="0,1,1,cafe]2F,aa:bb:cc:00:11:22,-40"))
    s = FrameSplitter()
    assert s.feed(raw + STREAM[0]) == [raw, STREAM[0]]
    assert decode(raw, NOW).reports[0].lat == 37.5444


def test_overstated_length_does_not_wait_for_more() -> None:
    raw = frame("LK,0,100").replace(b"*0008*", b"*0009*")  # an off-by-one firmware
    assert FrameSplitter().feed(raw) == [raw]


def test_index_or_length_is_decided_only_when_seen() -> None:
    raw = frame("LK", "ZJ", IMEI, "0034")
    s = FrameSplitter()
    head = len(f"[ZJ*{IMEI}*0034*")
    assert s.feed(raw[:head]) == [] and s.feed(raw[head:]) == [raw]


def test_a_frame_cut_short_by_the_next_one_does_not_delay_an_sos() -> None:
    sos = frame(ud("AL", "00010000"))
    s = FrameSplitter()
    out = s.feed(frame(ud())[:70] + sos)  # the watch reset mid-frame
    assert len(out) == 2 and out[1] == sos
    with pytest.raises(Rejected):
        decode(out[0], NOW)


def test_oversized_frame_is_dropped_and_the_stream_resyncs() -> None:
    s = FrameSplitter(max_frame=1024)
    assert s.feed(b"[3G*1*FFFF*UD," + b"9" * 5000) == []
    assert s.oversized == 1 and s.buffered == 0
    assert s.feed(STREAM[1]) == [STREAM[1]]


def test_garbage_forever_keeps_memory_bounded() -> None:
    s = FrameSplitter(max_frame=2048)
    rng = random.Random(7)
    for _ in range(300):
        s.feed(bytes(rng.randrange(256) for _ in range(512)))
        assert s.buffered <= 2048
    for chunk in (b"[3G*1*0005*UD,", b"1" * 3000, b"[" * 3000, b"[3G*" * 1000):
        for _ in range(20):
            s.feed(chunk)
            assert s.buffered <= 2048
    assert s.garbage > 150_000


def test_long_voice_message_costs_no_memory() -> None:
    s = FrameSplitter(max_binary=1_000_000)
    assert s.feed(b"[CS*1*FFFF*TK,#!AMR") == []
    for _ in range(100):
        assert s.feed(b"\x11" * 5000) == []
        assert s.buffered < 64
    assert s.feed(b"}\x03]" + STREAM[0]) == [b"[CS*1*FFFF*TK]", STREAM[0]]
    s2 = FrameSplitter(max_binary=10_000)
    s2.feed(b"[CS*1*FFFF*TK,")
    s2.feed(b"\x11" * 20_000)
    assert s2.oversized == 1 and s2.buffered == 0


# ------------------------------------------------------------------ fuzzing

FUZZ = settings(max_examples=400, deadline=500, suppress_health_check=[HealthCheck.too_slow])


def valid_frames() -> st.SearchStrategy[bytes]:
    status = st.sampled_from(["00000000", "00010000", "00000001", "00100000"])
    kind = st.sampled_from(["UD", "UD2", "UD_LTE", "AL", "WT"])
    loc = st.builds(lambda k, s: frame(ud(k, s)), kind, status)
    other = st.sampled_from([frame("LK"), frame("LK,1,2,3"), frame("TKQ"), frame("INIT,1"),
                             STREAM[3], frame("LK", "ZJ", IMEI, "00FF")])
    return st.one_of(loc, other)


def mutate(raw: bytes, data: st.DataObject) -> bytes:
    buf = bytearray(raw)
    for _ in range(data.draw(st.integers(1, 4))):
        op = data.draw(st.sampled_from(["flip", "cut", "insert", "delete"]))
        i = data.draw(st.integers(0, max(0, len(buf) - 1)))
        if op == "flip" and buf:
            buf[i] = data.draw(st.sampled_from(b",*[]}.-0129AVNSEW \x00\xff"))
        elif op == "cut":
            del buf[i:]
        elif op == "insert":
            buf[i:i] = data.draw(st.binary(max_size=8))
        elif buf:
            del buf[i]
    return bytes(buf)


@FUZZ
@given(st.binary(max_size=600))
def test_fuzz_decode_raises_only_rejected(raw: bytes) -> None:
    for candidate in (raw, b"[3G*1*0010*" + raw, b"[3G*1*0010*UD," + raw + b"]"):
        with contextlib.suppress(Rejected):
            decode(candidate, NOW)


@FUZZ
@given(valid_frames(), st.data())
def test_fuzz_mutated_frames(raw: bytes, data: st.DataObject) -> None:
    mutated = mutate(raw, data)
    try:
        msg = decode(mutated, NOW)
    except Rejected:
        return
    for r in msg.reports:
        assert r.device_id and isinstance(r.t, float)
        assert r.sos or (math.isfinite(r.lat) and math.isfinite(r.lon))


@FUZZ
@given(valid_frames(), st.data())
def test_fuzz_fast_path_agrees_with_field_by_field(raw: bytes, data: st.DataObject) -> None:
    """The one-regex fast path and the field-by-field path decide alike."""
    mutated = mutate(raw, data) if data.draw(st.booleans()) else raw

    def outcome() -> object:
        try:
            msg = decode(mutated, NOW)
        except Rejected as exc:
            return exc.reason
        return ([(r.t, r.lat, r.lon, r.speed, r.bearing, r.battery, r.sos, r.valid)
                 for r in msg.reports], msg.alarms, msg.battery, msg.network, msg.reply)

    fast = outcome()
    saved = watch._FAST
    watch._FAST = re.compile("(?!)")
    try:
        slow = outcome()
    finally:
        watch._FAST = saved
    assert repr(fast) == repr(slow)


def _report_fields(r: Report) -> tuple[object, ...]:
    return (r.device_id, r.t, r.lat, r.lon, r.speed, r.bearing, repr(r.accuracy), r.battery,
            r.sos, r.valid, r.alarms)


def test_plain_ud_frames_are_read_up_to_the_first_frame_that_is_not_one() -> None:
    one, two = frame(ud()), frame(ud("UD2", fix=FOREST.replace("37.544400", "37.6")))
    heartbeat = frame("LK,1,2,3")
    reports, used = watch.decode_plain_uds(one + two + heartbeat + one)
    assert [r.lat for r in reports] == [37.5444, 37.6] and used == len(one + two)
    wrong_length = one.replace(b"*%04X*" % (len(one) - 21), b"*%04X*" % (len(one) - 20))
    assert wrong_length != one and watch.decode_plain_uds(wrong_length + one) == ([], 0)
    assert watch.decode_plain_uds(frame(ud("AL"))) == ([], 0)  # an alarm needs its reply
    assert watch.decode_plain_uds(b"") == ([], 0)


@FUZZ
@given(st.lists(valid_frames(), min_size=1, max_size=5), st.data())
def test_fuzz_plain_ud_frames_read_in_one_match_are_what_splitting_and_decoding_make_of_them(
        frames: list[bytes], data: st.DataObject) -> None:
    """``decode_plain_uds`` (the gateway's one-match path for the UD frames
    that open a read) gives exactly the reports the splitter and ``decode``
    give for the bytes it takes, leaves the splitter where it would be, and
    takes a read of well-formed UD frames whole."""
    head = b"[3G*" + WATCH.encode() + b"*"
    reads, mutated = [], False
    for raw in frames:
        if data.draw(st.booleans()) and raw.startswith(head):
            raw = head + b"0A1F*" + raw[len(head):]  # an index before the length
        if data.draw(st.integers(0, 3)) == 0:
            raw, mutated = mutate(raw, data), True
        reads.append(raw)
    read = b"".join(reads)
    offset = data.draw(st.sampled_from([0.0, 9 * 3600.0]))
    reports, used = watch.decode_plain_uds(read, offset)
    kinds = [re.match(rb"\[[^*]*\*[^*]*\*(?:[0-9A-F]{4}\*)?[0-9A-F]{4}\*([A-Z_0-9]*)", r)
             for r in reads]
    if not mutated and all(k is not None and k.group(1).startswith(b"UD") for k in kinds):
        assert used == len(read) and len(reports) == len(reads)

    taken = FrameSplitter()
    cut = taken.feed(read[:used])
    assert taken.buffered == 0 and len(cut) == len(reports)
    whole = FrameSplitter()
    assert whole.feed(read) == cut + taken.feed(read[used:])
    for frame_, plain in zip(cut, reports, strict=True):
        msg = decode(frame_, NOW, offset)
        assert msg.reply is None
        assert [_report_fields(r) for r in msg.reports] == [_report_fields(plain)]


@FUZZ
@given(st.lists(valid_frames(), min_size=1, max_size=8),
       st.lists(st.binary(max_size=12).filter(lambda b: b"[" not in b), max_size=8),
       st.lists(st.integers(1, 300), max_size=20))
def test_fuzz_framing_is_independent_of_reads(frames: list[bytes], junk: list[bytes],
                                              sizes: list[int]) -> None:
    data = b"".join(f + (junk[i] if i < len(junk) else b"") for i, f in enumerate(frames))
    whole = FrameSplitter().feed(data)
    assert whole == [f if b"*TK," not in f else VOICE_STUB for f in frames]
    assert feed_all(FrameSplitter(), data, sizes) == whole


@FUZZ
@given(st.lists(st.binary(max_size=400), max_size=30), st.data())
def test_fuzz_splitter_never_raises_and_stays_bounded(chunks: list[bytes],
                                                      data: st.DataObject) -> None:
    s = FrameSplitter(max_frame=512, max_binary=2048)
    for chunk in chunks:
        if data.draw(st.booleans()):
            chunk = data.draw(valid_frames()) + chunk
        for f in s.feed(chunk):
            assert f.startswith(b"[")
            with contextlib.suppress(Rejected):
                decode(f, NOW)
        assert s.buffered <= 512

