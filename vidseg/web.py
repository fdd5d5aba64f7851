"""The HTTP plumbing the live preview and the service share: addresses, the Host check, quiet threaded
servers and answers with the same protective headers. Both serve a few fixed paths and never files."""

from __future__ import annotations

import sys
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from vidseg.errors import VidsegError

LOOPBACK = ("127.0.0.1", "localhost", "::1")
SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; img-src 'self' blob:; connect-src 'self'; "
                               "style-src 'unsafe-inline'; script-src 'unsafe-inline'",
}


def parse_address(address: str, flag: str) -> tuple[str, int]:
    """``host:port``, ``:port`` or ``port``; the host defaults to 127.0.0.1. ``flag`` names the option in
    errors."""
    host, _, port = address.rpartition(":")
    try:
        number = int(port)
    except ValueError:
        raise VidsegError(f"{flag} takes host:port or a port, got {address!r}") from None
    if not 0 <= number <= 65535:
        raise VidsegError(f"{flag} port must be 0..65535, got {number}")
    return host.strip("[]") or "127.0.0.1", number


def url_of(host: str, port: int) -> str:
    return f"http://{f'[{host}]' if ':' in host else host}:{port}/"


class QuietServer(ThreadingHTTPServer):
    """A client that went away mid-answer is normal and says nothing; anything else is one line, and the
    server goes on (it must never stop the work it shows)."""

    daemon_threads = True
    label = "server"

    def handle_error(self, request: Any, client_address: Any) -> None:
        error = sys.exc_info()[1]
        if not isinstance(error, OSError):
            print(f"vidseg: {self.label}: {type(error).__name__}: {error}", file=sys.stderr)


class Handler(BaseHTTPRequestHandler):
    """Answers with the shared headers; refuses a foreign Host on a loopback-bound server, so that a web
    page elsewhere cannot reach it through DNS rebinding."""

    protocol_version = "HTTP/1.1"
    timeout = 30  # a client that stops talking frees its thread

    def host_allowed(self, bound_host: str) -> bool:
        if bound_host not in LOOPBACK:
            return True  # bound elsewhere on purpose: the operator chose who can reach it
        host = (self.headers.get("Host") or "").rsplit(":", 1)[0].strip("[]")
        return host in LOOPBACK

    def send(self, status: HTTPStatus, body: bytes, content_type: str, extra: dict[str, str] | None = None) -> None:
        self.send_response(status)
        headers = {"Content-Type": content_type, "Content-Length": str(len(body)), **SECURITY_HEADERS}
        for k, v in {**headers, **(extra or {})}.items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD" and body:
            self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - http.server's signature
        """Quiet: the terminal belongs to the progress bar and the service's own messages."""
