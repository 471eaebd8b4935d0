"""The media relay's parts: pulling RTSP once per camera (``pull``, ``remux``),
fanning MPEG-TS out to consoles (``fanout``, ``http_ts``), camera status
(``status``), the pre-alarm buffer and evidence clips (``prealarm``,
``evidence``), and the camera registry tying them together (``hub``).

Why a relay at all: Debian's libvlc has no live555 and cannot open
``rtsp://``; and a camera should see one session however many operators
watch it. The service process is ``console.services.relay``.
"""
