"""``--preview``: a web page showing a run live (overlay, legend of the classes in view, a chart of their
shares over the last minute, fps and latency), served by this process to browsers on this machine.

    server.py   the HTTP server and what it serves: the page, the latest frame as JPEG, the state as JSON
    page.html   the page itself, self-contained (no CDN, no external file): works offline
"""
