"""Xelion's refusals (reference §C1): ``{"errorCode": 10004, "message": "...", "info": "resource=POST /api/v1/master/me/login"}``.

``info`` names the request as Xelion does, so an ``XelionError`` is answered by an ASGI callable that reads the
request line from the scope; the fault injector uses the same callables for its 5xx, 429 and drop answers.
"""

from __future__ import annotations

import orjson
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

JSON = "application/json; charset=utf-8"

NOT_AUTHENTICATED = 10000
NO_USER = 10002
NO_PASSWORD = 10003
WRONG_CREDENTIALS = 10004
ALREADY_LOGGED_IN = 10005
INVALID_AUTHENTICATION = 10020
NOT_FOUND = 10100
EMPTY_PAYLOAD = 10200
MALFORMED = 10202
BAD_ID = 10203
TOO_MANY_CONCURRENT = 10400
TIMED_OUT_WAITING = 10402
SERVER_ERROR = 11000


class XelionError(Exception):
    """A refusal with its HTTP status and Xelion error code; ``await error(scope, receive, send)`` answers it."""

    def __init__(self, status: int, code: int, message: str, headers: dict | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers

    def body(self, scope: Scope) -> dict:
        return {"errorCode": self.code, "message": self.message,
                "info": f"resource={scope.get('method', 'GET')} {_resource(scope)}"}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = Response(orjson.dumps(self.body(scope)), status_code=self.status, headers=self.headers,
                            media_type=JSON)
        await response(scope, receive, send)


def _resource(scope: Scope) -> str:
    """The path below the ``/xelion`` mount, as Xelion names it (``/api/v1/master/me/login``)."""
    path, root = scope.get("path", ""), scope.get("root_path", "")
    return path[len(root):] if root and path.startswith(root) else path


def bad_request(message: str, code: int = MALFORMED) -> XelionError:
    return XelionError(400, code, message)


def bad_id(message: str) -> XelionError:
    return XelionError(400, BAD_ID, message)


def not_found(what: str) -> XelionError:
    return XelionError(404, NOT_FOUND, f"{what} not found")


def not_authenticated(message: str = "not authenticated") -> XelionError:
    return XelionError(401, NOT_AUTHENTICATED, message)


def method_not_allowed(allowed: list[str]) -> XelionError:
    return XelionError(405, NOT_FOUND, "method not allowed for this resource", {"Allow": ", ".join(allowed)})
