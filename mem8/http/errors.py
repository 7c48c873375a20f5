"""The one error shape: every failure becomes {"error": {"message", "type", "param", "code"}}."""

from __future__ import annotations

import json
import logging
import math

from quart import Response
from werkzeug.exceptions import HTTPException

from mem8 import errors

log = logging.getLogger(__name__)


def error_body(error: errors.Mem8Error) -> dict[str, object]:
    return {
        "error": {
            "message": error.message,
            "type": error.error_type,
            "param": error.param,
            "code": error.code,
        }
    }


def render(error: errors.Mem8Error) -> Response:
    response = Response(
        json.dumps(error_body(error)), status=error.status, content_type="application/json"
    )
    response.headers.update(error_headers(error))
    return response


def error_headers(error: errors.Mem8Error) -> dict[str, str]:
    """What a client needs besides the body: when to retry, how to authenticate."""
    if isinstance(error, errors.RateLimited):
        return {"Retry-After": str(max(1, math.ceil(error.retry_after)))}
    if isinstance(error, errors.InvalidApiKey):
        return {"WWW-Authenticate": 'Bearer realm="mem8"'}
    return {}


def from_http_exception(exception: HTTPException) -> errors.Mem8Error:
    """Translates Quart/werkzeug's own 404, 405, 413 ... into domain errors."""
    code = exception.code or 500
    if code == 404:
        return errors.NotFound("Unknown route: see GET /v1/models and the API documentation")
    if code == 405:
        return errors.MethodNotAllowed(f"Method not allowed here: {exception.description}")
    if code == 413:
        return errors.InputTooLarge("Request body too large")
    error = errors.InvalidRequest(exception.description or exception.name)
    error.status = code
    return error


def from_unexpected(exception: BaseException) -> errors.Mem8Error:
    """A bug: logged with its trace here, answered without one."""
    log.error("unhandled error", exc_info=exception)
    return errors.Mem8Error("Internal server error; the server log has the details")
