"""What a request must be before any route reads it: for a Host this server answers for, from
no browser origin but those configured (CORS), with the content type its route reads, and with
headers of a sane size. A web page can reach a loopback server; these keep it from using it."""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from quart import Response, request

from mem8 import errors
from mem8.http.errors import render

LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
JSON_ROUTES = frozenset(
    {
        "chat_completions",
        "create_embedding",
        "search_memories",
        "update_chat_completion",
        "create_response",
    }
)
FORM_ROUTES = frozenset({"transcribe", "upload_file"})
# hypercorn's own limit is raised above this (mem8.server), so that an oversized header block
# reaches the app and is answered in the one error shape rather than with an empty 431.
MAX_HEADER_BYTES = 32 * 1024
EXPOSED = "x-mem8-interest, x-mem8-conscious, x-request-id"
PREFLIGHT_MAX_AGE = "600"


def _names(setting: str) -> frozenset[str]:
    return frozenset(name.strip().lower() for name in setting.split(",") if name.strip())


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def host_name(header: str) -> str:
    """The host of a Host header, without its port or brackets, lower-cased."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1 : header.find("]")] if "]" in header else header
    return (header.rpartition(":")[0] if ":" in header else header).rstrip(".")


class Edge:
    """The checks above, as a before-request hook, and the CORS headers an answer gets."""

    def __init__(self, bound: str, allowed_hosts: str, cors_origins: str) -> None:
        """bound: the address served on; the others as their settings read."""
        self.origins = frozenset(o.rstrip("/") for o in _names(cors_origins))
        configured = _names(allowed_hosts)
        self.any_host = "*" in configured or (not configured and not is_loopback(bound))
        self.hosts = LOOPBACK_NAMES | {h.strip("[]") for h in configured}

    async def guard(self) -> Response | None:
        """None to go on to the route; else the answer: a preflight's, or the refusal. A
        refusal closes the connection: its body was not read, so it cannot carry another."""
        try:
            return self._checked()
        except errors.Mem8Error as error:
            response = render(error)
            response.headers["Connection"] = "close"
            return response

    def _checked(self) -> Response | None:
        self._check_headers()
        self._check_host()
        origin = request.headers.get("Origin")
        if origin is not None and not self._same_origin(origin):
            if not self._allowed(origin):
                raise errors.OriginNotAllowed(
                    f"Requests from the origin {origin!r} are not allowed: set cors_origins "
                    "(MEM8_CORS_ORIGINS) to serve browser pages of that origin"
                )
            if request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers:
                return self._preflight(origin)
        self._check_content_type()
        return None

    async def sign(self, response: Response) -> Response:
        """Adds the CORS headers an allowed origin's page needs to read the answer."""
        origin = request.headers.get("Origin")
        if origin is not None and self._allowed(origin):
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers["Access-Control-Expose-Headers"] = EXPOSED
            response.vary.add("Origin")
        return response

    def _allowed(self, origin: str) -> bool:
        return "*" in self.origins or origin.lower().rstrip("/") in self.origins

    def _same_origin(self, origin: str) -> bool:
        """A page the server itself served (its Host passed the check): no CORS involved."""
        return urlsplit(origin).netloc.lower() == request.headers.get("Host", "").lower()

    def _preflight(self, origin: str) -> Response:
        response = Response("", status=204)
        response.headers["Access-Control-Allow-Methods"] = "GET, POST, DELETE, OPTIONS"
        asked = request.headers.get("Access-Control-Request-Headers")
        if asked:  # the origin is trusted: any header it names (Authorization, OpenAI-*...)
            response.headers["Access-Control-Allow-Headers"] = asked
        response.headers["Access-Control-Max-Age"] = PREFLIGHT_MAX_AGE
        return response

    def _check_headers(self) -> None:
        size = sum(len(key) + len(value) + 4 for key, value in request.headers.items())
        if size > MAX_HEADER_BYTES:
            raise errors.HeadersTooLarge(
                f"The request's headers take {size} bytes; at most {MAX_HEADER_BYTES} are read"
            )

    def _check_host(self) -> None:
        header = request.headers.get("Host")
        if header is None or self.any_host or host_name(header) in self.hosts:
            return
        raise errors.HostNotAllowed(
            f"This server does not answer for the host {header!r}: add it to allowed_hosts "
            "(MEM8_ALLOWED_HOSTS) to serve it under that name"
        )

    def _check_content_type(self) -> None:
        if request.method != "POST":
            return
        if request.endpoint in JSON_ROUTES and request.mimetype != "application/json":
            raise errors.UnsupportedMediaType(
                "Expected a JSON body with the header 'Content-Type: application/json' "
                f"(got {request.mimetype or 'no content type'})"
            )
        if request.endpoint in FORM_ROUTES and request.mimetype != "multipart/form-data":
            raise errors.UnsupportedMediaType(
                "Expected a multipart/form-data body with a 'file' field "
                f"(got {request.mimetype or 'no content type'})"
            )
