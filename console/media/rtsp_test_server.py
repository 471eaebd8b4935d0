"""Stand-in CCTV cameras: a GStreamer RTSP server with live test patterns.

Why a separate script: the GStreamer RTSP server comes from Debian
(``gir1.2-gst-rtsp-server-1.0`` with ``python3-gi``) and only imports under
Debian's ``/usr/bin/python3``, not the project's venv. Tests run this file as
a child process and talk to it over stdin/stdout (the demo runs it too,
through ``console.services.democams``):

- stdout, one event per line (flushed), which the fixture parses:
  ``READY <port>``, ``CONNECT <peer>``, ``PLAY /camN <peer>`` (one per RTSP
  session that starts playing), ``CLOSED <peer>``, ``OK <command>``, where
  ``<peer>`` is the client's ``ip:port``.
- stdin, one command per line: ``kill camN`` (unmount and drop its clients,
  as if that camera died), ``revive camN`` (mount it again), ``stall camN``
  / ``unstall camN`` (keep the session but stop/restart sending frames).

Usage: /usr/bin/python3 console/media/rtsp_test_server.py --port P [--mounts N]
[--width 320 --height 240 --fps 10 --kbps 300] [--labels FILE]. SIGTERM or
SIGINT stops it. ``--labels`` is a JSON object naming mounts
(``{"cam3": "#3 북서방향 · 공원관리"}``); a mount without one shows its own name.
``--check`` only checks that every element it needs is installed (exit 2 and
the missing ones with their Debian packages on stderr otherwise).

Each mount streams H.264 (x264, one keyframe a second, SPS/PPS in band)
of a picture an operator can tell apart from every other mount's at a
glance: its own background colour and moving pattern (a ball on most,
scrolling colour bars on some), its label (the camera's name) at the top
and a running clock at the bottom, so a decoder sees real changing frames
and a screenshot shows which camera is which.  All of it is drawn by
videotestsrc and two Pango overlays at 320×240 and 10 fps: a few percent of
one core per watched mount. Only 127.0.0.1 is served.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402

_say_lock = threading.Lock()

# Every element of the launch line, with the Debian package that ships it.
# A missing one only shows up as "503" to RTSP clients, so it is checked at
# start and the server refuses to run without it.
ELEMENTS: dict[str, str] = {
    "videotestsrc": "gstreamer1.0-plugins-base",
    "clockoverlay": "gstreamer1.0-x",  # the Pango plugin lives there, not in -base
    "textoverlay": "gstreamer1.0-x",
    "valve": "libgstreamer1.0-0",
    "x264enc": "gstreamer1.0-plugins-ugly",
    "rtph264pay": "gstreamer1.0-plugins-good",
}


# Mid-tone backgrounds (ARGB), far enough apart in hue to tell tiles apart
# and never near black; white foreground and text stay readable on each.
BACKGROUNDS = (0xFF1F5A96, 0xFF2E7D32, 0xFF9A5B13, 0xFF6A3D9A, 0xFF00796B, 0xFFAD1457,
               0xFF5D6B7A, 0xFF7A7A12)
FOREGROUNDS = (0xFFFFFFFF, 0xFFFFE066, 0xFFB3F0FF)  # the ball: white, yellow, pale cyan


def look(index: int) -> str:
    """The videotestsrc settings of mount ``index`` (0-based): a distinct
    background and pattern per mount, cycling after len(BACKGROUNDS)."""
    bg = BACKGROUNDS[index % len(BACKGROUNDS)]
    if index % 4 == 3:  # every fourth: colour bars scrolling by
        return f"pattern=smpte75 horizontal-speed={1 + index % 3}"
    fg = FOREGROUNDS[(index // len(BACKGROUNDS) + index) % len(FOREGROUNDS)]
    return f"pattern=ball motion=wavy background-color={bg} foreground-color={fg}"


def say(line: str) -> None:
    """One whole line per event: GStreamer calls back from several threads."""
    with _say_lock:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


class Cameras:
    """The server, its mounts, and who is watching what (for ``kill``)."""

    def __init__(self, port: int, mounts: int, width: int, height: int, fps: int,
                 kbps: int, labels: dict[str, str] | None = None) -> None:
        self.server = GstRtspServer.RTSPServer()
        self.server.set_address("127.0.0.1")
        self.server.set_service(str(port))
        # config-interval=0: x264 already repeats SPS/PPS in band before each
        # keyframe. With -1 the payloader inserts them again before *every*
        # IDR slice, and zerolatency encodes two slices a frame, so parameter
        # sets land between the slices of one picture; that starts a new
        # access unit (H.264 7.4.1.2.3), so FFmpeg and libvlc decode half a
        # keyframe and conceal the other half until the next one.
        # The label's text is set on the element (media-configure), never
        # spliced into the launch line: a camera name may hold any character.
        self.launch = (
            "( videotestsrc is-live=true {look} ! "
            f"video/x-raw,width={width},height={height},framerate={fps}/1 ! "
            "textoverlay name=label valignment=top halignment=left shaded-background=true "
            "font-desc=\"Sans Bold 13\" wrap-mode=wordchar ! "
            "clockoverlay valignment=bottom halignment=right shaded-background=true "
            "time-format=\"%H:%M:%S\" font-desc=\"Sans 12\" ! valve name=gate drop=false ! "
            f"x264enc tune=zerolatency speed-preset=ultrafast bitrate={kbps} "
            f"key-int-max={fps} ! video/x-h264,profile=baseline ! "
            "rtph264pay name=pay0 pt=96 config-interval=0 )"
        )
        self.names = [f"cam{i}" for i in range(1, mounts + 1)]
        self.labels = {n: (labels or {}).get(n) or n for n in self.names}
        self.clients: dict[str, set[GstRtspServer.RTSPClient]] = {n: set() for n in self.names}
        self.media: dict[str, GstRtspServer.RTSPMedia] = {}
        for name in self.names:
            self.mount(name)
        self.server.connect("client-connected", self.on_client)
        self.source_id = self.server.attach(None)
        say(f"READY {port}")

    def mount(self, name: str) -> None:
        factory = GstRtspServer.RTSPMediaFactory()
        factory.set_launch(self.launch.format(look=look(self.names.index(name))))
        factory.set_shared(True)  # like a camera: one encoder whoever watches
        factory.connect("media-configure", lambda _f, media: self.configure(name, media))
        self.server.get_mount_points().add_factory(f"/{name}", factory)

    def configure(self, name: str, media: GstRtspServer.RTSPMedia) -> None:
        self.media[name] = media
        label = media.get_element().get_by_name("label")
        if label is not None:
            label.set_property("text", self.labels[name])

    def on_client(self, _server: GstRtspServer.RTSPServer,
                  client: GstRtspServer.RTSPClient) -> None:
        addr = client.get_connection().get_read_socket().get_remote_address()
        peer = f"{addr.get_address().to_string()}:{addr.get_port()}"
        say(f"CONNECT {peer}")
        client.connect("play-request", lambda c, ctx: self.on_play(c, ctx, peer))
        client.connect("closed", lambda c: self.on_closed(c, peer))

    def on_play(self, client: GstRtspServer.RTSPClient, ctx: GstRtspServer.RTSPContext,
                peer: str) -> None:
        path = ctx.uri.abspath if ctx.uri is not None else "?"
        name = path.strip("/").split("/")[0]
        if name in self.clients:
            self.clients[name].add(client)
        say(f"PLAY /{name} {peer}")

    def on_closed(self, client: GstRtspServer.RTSPClient, peer: str) -> None:
        for watchers in self.clients.values():
            watchers.discard(client)
        say(f"CLOSED {peer}")

    def command(self, line: str) -> None:
        verb, _, name = line.strip().partition(" ")
        if name not in self.clients:
            say(f"ERROR unknown mount {name!r}")
            return
        if verb == "kill":
            self.server.get_mount_points().remove_factory(f"/{name}")
            for client in list(self.clients[name]):
                client.close()
            self.clients[name].clear()
            self.media.pop(name, None)
        elif verb == "revive":
            self.mount(name)
        elif verb in ("stall", "unstall"):
            media = self.media.get(name)
            gate = media.get_element().get_by_name("gate") if media is not None else None
            if gate is None:
                say(f"ERROR {name} is not streaming")
                return
            gate.set_property("drop", verb == "stall")
        else:
            say(f"ERROR unknown command {verb!r}")
            return
        say(f"OK {verb} {name}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int)
    parser.add_argument("--check", action="store_true",
                        help="only check that every GStreamer element is installed")
    parser.add_argument("--mounts", type=int, default=2)
    parser.add_argument("--width", type=int, default=320)
    parser.add_argument("--height", type=int, default=240)
    parser.add_argument("--fps", type=int, default=10)
    parser.add_argument("--kbps", type=int, default=300)
    parser.add_argument("--labels", default=None,
                        help="JSON file: {mount: text shown on its picture}")
    args = parser.parse_args()
    Gst.init(None)
    missing = [f"{e} ({pkg})" for e, pkg in ELEMENTS.items() if Gst.ElementFactory.find(e) is None]
    if missing:
        print(f"missing GStreamer elements: {', '.join(missing)}", file=sys.stderr, flush=True)
        return 2
    if args.check:
        return 0
    if args.port is None:
        parser.error("--port is required")
    loop = GLib.MainLoop()
    labels: dict[str, str] = {}
    if args.labels:
        with open(args.labels, encoding="utf-8") as f:
            labels = {str(k): str(v) for k, v in json.load(f).items()}
    cams = Cameras(args.port, args.mounts, args.width, args.height, args.fps, args.kbps, labels)

    def read_commands() -> None:
        # stdin is read off the main loop; commands run on it (GStreamer's
        # RTSP server objects belong to the main context).
        for line in sys.stdin:
            if line.strip():
                GLib.idle_add(lambda cmd=line: cams.command(cmd) and False)
        # stdin closed: the test process is gone, so are we.
        GLib.idle_add(lambda: loop.quit() and False)

    threading.Thread(target=read_commands, daemon=True).start()
    for sig in (signal.SIGTERM, signal.SIGINT):
        GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, sig, lambda: loop.quit() or False)
    loop.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
