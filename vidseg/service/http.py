"""The service's HTTP side: the dashboard, the control API, ``/metrics`` and ``/healthz``, on one port.

    GET    /                         the dashboard: every stream's live overlay and its figures
    GET    /healthz                  200 while the service runs (with how many streams are live)
    GET    /metrics                  Prometheus text format
    GET    /api/streams              every stream's status
    GET    /api/streams/NAME         one stream's status
    GET    /api/streams/NAME/frame.jpg   its newest overlay
    POST   /api/streams              add one: {"name": "gate", "url": "rtsp://...", "fps": 2, ...}
    DELETE /api/streams/NAME         remove one (its recordings are closed, playable)

Anything else is 404 or 405. As the preview does, a loopback-bound server refuses a foreign Host header.
When the service listens beyond loopback it has a token, and POST and DELETE need it
(``Authorization: Bearer TOKEN``): reading is for the network the operator chose, changing is not.
"""

from __future__ import annotations

import hmac
import json
from http import HTTPStatus
from importlib import resources
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from vidseg.errors import VidsegError
from vidseg.service.metrics import CONTENT_TYPE
from vidseg.web import Handler, QuietServer

if TYPE_CHECKING:
    from vidseg.service.service import Service

MAX_BODY = 64 * 1024
API = "/api/streams"


class ServiceServer(QuietServer):
    label = "serve"

    def __init__(self, address: tuple[str, int], service: Service, token: str | None):
        super().__init__(address, ServiceHandler)
        self.service, self.token = service, token
        self.page = resources.files("vidseg.service").joinpath("dashboard.html").read_bytes()


class ServiceHandler(Handler):
    server: ServiceServer
    server_version = "vidseg-serve"

    # --- reading ---------------------------------------------------------------------------------------
    def do_GET(self) -> None:  # noqa: N802 - the name http.server dispatches to
        if not self._allowed(control=False):
            return
        path = urlsplit(self.path).path
        service = self.server.service
        if path in ("/", "/index.html"):
            self.send(HTTPStatus.OK, self.server.page, "text/html; charset=utf-8")
        elif path == "/healthz":
            self._json(HTTPStatus.OK, service.health())
        elif path == "/metrics":
            self.send(HTTPStatus.OK, service.metrics.text(), CONTENT_TYPE)
        elif path == API:
            self._json(HTTPStatus.OK, {"streams": list(service.statuses().values())})
        elif path.startswith(API + "/"):
            name, _, rest = unquote(path[len(API) + 1:]).partition("/")
            stream = service.get(name)
            if stream is None or rest not in ("", "frame.jpg"):
                self._json(HTTPStatus.NOT_FOUND, {"error": f"no stream {name!r}" if stream is None else "not found"})
            elif rest == "":
                self._json(HTTPStatus.OK, stream.status())
            else:
                jpeg = stream.jpeg()
                if jpeg is None:
                    self.send(HTTPStatus.NO_CONTENT, b"", "text/plain")
                else:
                    self.send(HTTPStatus.OK, jpeg, "image/jpeg")
        else:
            self._json(HTTPStatus.NOT_FOUND, {"error": "not found"})

    # --- changing --------------------------------------------------------------------------------------
    def do_POST(self) -> None:  # noqa: N802
        if not self._allowed(control=True):
            return
        if urlsplit(self.path).path != API:
            self._json(HTTPStatus.NOT_FOUND if not self.path.startswith(API) else HTTPStatus.METHOD_NOT_ALLOWED,
                       {"error": f"POST goes to {API}"})
            return
        try:
            body = self._body()
            name = body.pop("name", None) if isinstance(body, dict) else None
            if name is None:
                raise VidsegError("the body needs a 'name' and a 'url'")
            stream = self.server.service.add(name, body)
        except VidsegError as e:
            status = HTTPStatus.CONFLICT if "already" in str(e) else HTTPStatus.BAD_REQUEST
            self._json(status, {"error": str(e)})
            return
        self._json(HTTPStatus.CREATED, stream.status())

    def do_DELETE(self) -> None:  # noqa: N802
        if not self._allowed(control=True):
            return
        path = urlsplit(self.path).path
        if not path.startswith(API + "/") or "/" in path[len(API) + 1:]:
            self._json(HTTPStatus.NOT_FOUND, {"error": f"DELETE takes {API}/NAME"})
            return
        name = unquote(path[len(API) + 1:])
        if not self.server.service.remove(name):
            self._json(HTTPStatus.NOT_FOUND, {"error": f"no stream {name!r}"})
            return
        self._json(HTTPStatus.OK, {"removed": name})

    def _not_allowed(self) -> None:
        self._json(HTTPStatus.METHOD_NOT_ALLOWED, {"error": "only GET, POST and DELETE"},
                   {"Allow": "GET, POST, DELETE"})

    do_PUT = do_PATCH = do_HEAD = do_OPTIONS = _not_allowed  # noqa: N815

    # --- helpers ---------------------------------------------------------------------------------------
    def _allowed(self, control: bool) -> bool:
        if not self.host_allowed(self.server.server_address[0]):
            self._json(HTTPStatus.FORBIDDEN, {"error": "forbidden host"})
            return False
        token = self.server.token
        if control and token is not None:
            given = (self.headers.get("Authorization") or "").removeprefix("Bearer ").strip()
            if not hmac.compare_digest(given.encode(), token.encode()):
                self._json(HTTPStatus.UNAUTHORIZED, {"error": "this service needs its token: "
                                                              "Authorization: Bearer TOKEN"},
                           {"WWW-Authenticate": "Bearer"})
                return False
        return True

    def _body(self) -> Any:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            raise VidsegError("Content-Length is not a number") from None
        if length <= 0 or length > MAX_BODY:
            raise VidsegError(f"the body must be JSON of 1 to {MAX_BODY} bytes")
        try:
            return json.loads(self.rfile.read(length))
        except (ValueError, UnicodeDecodeError):
            raise VidsegError("the body is not valid JSON") from None

    def _json(self, status: HTTPStatus, obj: Any, extra: dict[str, str] | None = None) -> None:
        if status >= 400:
            self.close_connection = True  # a refused request's body may be unread: start afresh
        self.send(status, (json.dumps(obj) + "\n").encode(), "application/json", extra)
