"""What every emulator's admin API shares: its error and how it reads a JSON body."""

from __future__ import annotations

import orjson
from starlette.requests import Request


class AdminError(Exception):
    """An admin request that cannot be carried out; answered as `{"error": message}` with `status`."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.message, self.status = message, status


async def json_object(request: Request) -> dict:
    """The request body as a JSON object (an empty body is `{}`)."""
    try:
        body = orjson.loads(await request.body() or b"{}")
    except orjson.JSONDecodeError:
        raise AdminError("body must be JSON") from None
    if not isinstance(body, dict):
        raise AdminError("body must be a JSON object")
    return body
