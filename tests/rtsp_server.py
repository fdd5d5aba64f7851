"""A real RTSP server for the tests: GStreamer's (Debian's gir1.2-gst-rtsp-server-1.0), publishing an H.264
MP4 file as a live stream, paced by the clock, one process per camera so that one can be killed alone.

    /usr/bin/python3 tests/rtsp_server.py PORT FILE.mp4     # serves rtsp://127.0.0.1:PORT/live

Run by the system Python, which has the GObject bindings (python3-gi); prints "ready" once listening.
"""

import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402

Gst.init(None)
port, path = sys.argv[1], sys.argv[2]
server = GstRtspServer.RTSPServer()
server.set_address("127.0.0.1")
server.set_service(port)
factory = GstRtspServer.RTSPMediaFactory()
factory.set_launch(f"( filesrc location={path} ! qtdemux ! h264parse config-interval=-1 "
                   "! rtph264pay name=pay0 pt=96 config-interval=1 )")
factory.set_shared(True)  # every client sees the same live stream, as from a camera
server.get_mount_points().add_factory("/live", factory)
if server.attach(None) == 0:
    sys.exit(f"cannot listen on 127.0.0.1:{port}")
print("ready", flush=True)
GLib.MainLoop().run()
