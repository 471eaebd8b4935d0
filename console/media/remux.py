"""Compressed video packets in, MPEG-TS chunks out (no decoding, no encoding).

Why MPEG-TS: libvlc plays it over plain HTTP, a client may join at any
packet boundary, and clips are just the same bytes written to a file. Why
remux only: re-encoding costs a core per camera; stream copy costs almost
nothing.

Each chunk holds the TS packets for one video access unit, flagged when it
starts with a keyframe (FFmpeg's muxer puts PAT/PMT, and SPS/PPS for H.264,
in front of keyframes), so fan-out and the pre-alarm ring can start a
viewer or a clip exactly where a decoder can.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING, Any

import av
import av.container
import av.video.stream

# Codecs FFmpeg's MPEG-TS muxer carries and libvlc decodes. MJPEG (common on
# cheap cameras) is not among them and would need transcoding.
TS_VIDEO_CODECS = frozenset({"h264", "hevc", "mpeg4", "mpeg2video"})
TS_PACKET = 188
if TYPE_CHECKING:
    VideoPacket = av.Packet[av.video.stream.VideoStream]


@dataclass(frozen=True, slots=True)
class Chunk:
    """TS bytes for one access unit; ``t`` is wall-clock arrival (epoch s)."""

    t: float
    data: bytes
    key: bool


class _Sink:
    """The file-like object FFmpeg writes the muxed stream into."""

    def __init__(self) -> None:
        self.buf = bytearray()

    def write(self, data: bytes) -> int:
        self.buf += data
        return len(data)

    def take(self) -> bytes:
        out = bytes(self.buf)
        self.buf.clear()
        return out


class UnsupportedCodec(ValueError):
    """The camera's codec cannot travel in MPEG-TS without transcoding."""


class TsRemuxer:
    """Stream-copies one input video stream into MPEG-TS chunks.

    RTSP depacketizers may hand over one access unit as several packets with
    the same timestamp (e.g. SPS/PPS, then the IDR slice); the muxer refuses
    the second one, which would lose every keyframe. So packets with equal
    dts are joined before muxing, at the cost of one frame of latency.
    """

    def __init__(self, source: av.video.stream.VideoStream) -> None:
        name = source.codec_context.name
        if name not in TS_VIDEO_CODECS:
            raise UnsupportedCodec(f"codec {name} cannot be relayed as MPEG-TS")
        self.time_base: Fraction = source.time_base or Fraction(1, 90_000)
        self._sink = _Sink()
        self._out = av.open(self._sink, "w", format="mpegts",
                            options={"flush_packets": "1"})
        self._stream = self._out.add_stream_from_template(source)
        self._pending: list[VideoPacket] = []
        self._started = False
        self.refused = 0  # packets the muxer rejected (e.g. timestamps going back)

    def feed(self, packet: VideoPacket) -> Chunk | None:
        """Take one demuxed packet; return the chunk completed by it, if any."""
        if packet.dts is None or packet.size == 0:
            return None  # probing leftovers and flush packets carry no frame
        if self._pending and self._pending[0].dts != packet.dts:
            chunk = self._mux(self._pending)
            self._pending = [packet]
            return chunk
        self._pending.append(packet)
        return None

    def _mux(self, parts: list[VideoPacket]) -> Chunk | None:
        key = any(p.is_keyframe for p in parts)
        if not self._started and not key:
            return None  # nothing before the first keyframe is decodable
        self._started = True
        packet = parts[0] if len(parts) == 1 else self._join(parts, key)
        packet.stream = self._stream
        try:
            self._out.mux(packet)
        except (ValueError, av.FFmpegError):
            self.refused += 1
            return None
        data = self._sink.take()
        return Chunk(time.time(), data, key) if data else None

    def _join(self, parts: list[VideoPacket], key: bool) -> av.Packet[Any]:
        """One packet holding a whole access unit (Annex B NAL units concatenate)."""
        packet = av.Packet(b"".join(bytes(p) for p in parts))
        packet.pts, packet.dts = parts[0].pts, parts[0].dts
        packet.time_base = parts[0].time_base or self.time_base
        packet.is_keyframe = key
        return packet

    def close(self) -> None:
        # Closing after a failed write may complain; there is nothing to save.
        with contextlib.suppress(ValueError, av.FFmpegError):
            self._out.close()
