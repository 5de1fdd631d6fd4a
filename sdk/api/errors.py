"""SDK errors -> the Engine API's JSON error responses and status codes."""

from __future__ import annotations

import json
from typing import Any

from sdk import errors

STATUS: list[tuple[type[Exception], int]] = [
    (errors.NotFound, 404), (errors.Conflict, 409), (errors.InvalidArgument, 400),
]


def status_for(exc: Exception) -> int:
    for cls, code in STATUS:
        if isinstance(exc, cls):
            return code
    return 500


def json_response(data: Any, status: int = 200) -> Any:
    from aiohttp import web

    return web.Response(body=json.dumps(data).encode(), status=status,
                        content_type="application/json")


def error_response(message: str, status: int) -> Any:
    return json_response({"message": message}, status)
