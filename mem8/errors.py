"""Domain errors: library code raises these, the edges (HTTP, CLI) translate them."""

from __future__ import annotations

from typing import Any

# Every domain error by class name, wherever it is defined: what crosses an actor or a journal
# as a name comes back as its own class (and so its status). The first of a name keeps it.
_BY_NAME: dict[str, type[Mem8Error]] = {}


class Mem8Error(Exception):
    """Base of every error mem8 raises on purpose; carries its HTTP rendering."""

    status = 500
    error_type = "server_error"
    code: str | int | None = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _BY_NAME.setdefault(cls.__name__, cls)

    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


_BY_NAME[Mem8Error.__name__] = Mem8Error


class InvalidRequest(Mem8Error):
    """The request is malformed or a field is missing or invalid."""

    status = 400
    error_type = "invalid_request_error"
    code = "invalid_request"


class ContextLengthExceeded(InvalidRequest):
    """The client's own messages do not fit the backend's context (OpenAI's code for it)."""

    code = "context_length_exceeded"


class StringTooLong(InvalidRequest):
    """A string field is longer than mem8 takes (OpenAI's code for it)."""

    code = "string_above_max_length"


class IdempotencyConflict(InvalidRequest):
    """An Idempotency-Key reused with another body, or by a request racing the first."""

    status = 409
    code = "idempotency_key_reused"


class UnknownModel(Mem8Error):
    """No persona has this model id (the spec's 404 shape, with a numeric code)."""

    status = 404
    error_type = "invalid_request_error"
    code = 404

    def __init__(self, model: str) -> None:
        super().__init__(f"Model '{model}' not found", param="model")
        self.model = model


class NotFound(Mem8Error):
    """A route or object does not exist."""

    status = 404
    error_type = "invalid_request_error"
    code = "not_found"


class MethodNotAllowed(Mem8Error):
    status = 405
    error_type = "invalid_request_error"
    code = "method_not_allowed"


class HostNotAllowed(Mem8Error):
    """The Host header names no host this server answers for (DNS rebinding, a wrong name)."""

    status = 400
    error_type = "invalid_request_error"
    code = "host_not_allowed"


class OriginNotAllowed(Mem8Error):
    """A browser page of an origin not in the CORS settings sent this request."""

    status = 403
    error_type = "invalid_request_error"
    code = "origin_not_allowed"


class UnsupportedMediaType(Mem8Error):
    """The body's content type is not the one the route reads (JSON, or a multipart form)."""

    status = 415
    error_type = "invalid_request_error"
    code = "unsupported_media_type"


class HeadersTooLarge(Mem8Error):
    status = 431
    error_type = "invalid_request_error"
    code = "request_header_fields_too_large"


class InputTooLarge(Mem8Error):
    status = 413
    error_type = "invalid_request_error"
    code = "request_too_large"


class BackendUnavailable(Mem8Error):
    """The LLM backend could not be reached; the message says which and what to do."""

    status = 503
    error_type = "server_error"
    code = "backend_unavailable"


class BackendFailed(Mem8Error):
    """The LLM backend answered, but with an error (bad gateway)."""

    status = 502
    error_type = "server_error"
    code = "backend_error"


class SenseUnavailable(Mem8Error):
    """A sense's package, model or program is not installed; the message names it."""

    status = 503
    error_type = "server_error"
    code = "sense_unavailable"


class ActorUnavailable(Mem8Error):
    """An actor did not answer in time or failed while handling a message."""

    status = 503
    error_type = "server_error"
    code = "actor_unavailable"


class Overloaded(Mem8Error):
    """A mailbox is full: the caller should retry later."""

    status = 429
    error_type = "rate_limit_error"
    code = "overloaded"


class InvalidApiKey(Mem8Error):
    """No key, or one that is not a valid, unrevoked key of this server (OpenAI's 401)."""

    status = 401
    error_type = "invalid_request_error"
    code = "invalid_api_key"


class PermissionDenied(Mem8Error):
    """A valid key asked for what only an admin key may do."""

    status = 403
    error_type = "invalid_request_error"
    code = "insufficient_permissions"


class RateLimited(Mem8Error):
    """A key's requests, tokens or streams per minute are used up: OpenAI's 429, with when to
    try again (`retry_after`, seconds) and which limit (`error_type`: requests, tokens)."""

    status = 429
    error_type = "requests"
    code = "rate_limit_exceeded"

    def __init__(self, message: str, *, retry_after: float, kind: str = "requests") -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.error_type = kind


class GenerationCancelled(Mem8Error):
    """The caller went away before the answer was complete (recorded so replay matches)."""

    status = 499
    error_type = "invalid_request_error"
    code = "cancelled"


class ConfigError(Mem8Error):
    """The configuration is invalid; the message names the file, the key and the problem."""


def rebuild(name: str, message: str, param: str | None = None) -> Mem8Error:
    """The error an actor or journal reported by class name, with its class (and so status)."""
    cls = _BY_NAME.get(name, ActorUnavailable)
    error = cls.__new__(cls)
    Mem8Error.__init__(error, message, param=param)
    return error
