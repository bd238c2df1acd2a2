"""The body of ``POST /message``: JSON, bounded while it streams in, then validated.

What can be wrong, and the answer:

- a media type other than ``application/json``: 415 (so a browser cannot send it as a
  "simple" cross-site request, which skips the CORS preflight);
- more than the limit, declared in ``Content-Length`` or counted as chunks arrive: 413, and
  the rest is never read;
- not JSON (bad syntax, not UTF-8, nested too deep): 400;
- JSON that is not ``{"session_id": str, "message": str}`` (not an object, a field missing or
  of another type, a session id out of its alphabet, a blank message): 422.
"""

from __future__ import annotations

import json
import re
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator
from starlette.requests import ClientDisconnect, Request

from gateway.errors import Refusal

MEDIA_TYPE = "application/json"
SESSION_ID_MAX = 128
# One folder name in the workspace (skills/_context.py checks the same alphabet): it starts with
# a letter or digit, so it is never "." or "..", and holds no path separator.
_SESSION_ID = re.compile(rf"[A-Za-z0-9][A-Za-z0-9_.-]{{0,{SESSION_ID_MAX - 1}}}")


class Asked(BaseModel):
    """A validated request: which conversation, and what the caller says in it."""

    model_config = ConfigDict(strict=True, frozen=True)  # strict: 123 is no session id

    session_id: str
    message: str

    @field_validator("session_id")
    @classmethod
    def _session_id(cls, value: str) -> str:
        if not _SESSION_ID.fullmatch(value):
            raise ValueError(
                f"must be 1-{SESSION_ID_MAX} letters, digits, '_', '.' or '-', "
                "starting with a letter or digit"
            )
        return value

    @field_validator("message")
    @classmethod
    def _message(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty or blank")
        return value


async def read_asked(request: Request, max_bytes: int) -> Asked:
    """The request's body as :class:`Asked`, or a :class:`Refusal` saying what is wrong."""
    _check_media_type(request.headers.get("content-type"))
    return _validated(_parsed(await _read(request, max_bytes)))


def _check_media_type(header: str | None) -> None:
    media = (header or "").partition(";")[0].strip().lower()
    if media != MEDIA_TYPE:
        raise Refusal(415, "unsupported_media_type", f"send the body as Content-Type: {MEDIA_TYPE}")


def _too_large(max_bytes: int) -> Refusal:
    return Refusal(413, "too_large", f"the body is over the limit of {max_bytes} bytes")


async def _read(request: Request, max_bytes: int) -> bytes:
    declared = request.headers.get("content-length", "")
    # uvicorn has already refused a malformed Content-Length; a chunked body declares none.
    if declared.isdigit() and int(declared) > max_bytes:
        raise _too_large(max_bytes)
    body = bytearray()
    try:
        async for chunk in request.stream():
            body += chunk
            if len(body) > max_bytes:  # a chunked body, or one longer than it declared
                raise _too_large(max_bytes)
    except ClientDisconnect:
        raise Refusal(400, "incomplete_body", "the connection closed before the body ended") from None
    return bytes(body)


def _parsed(body: bytes) -> Any:
    try:
        return json.loads(body)  # bytes: UTF-8 (or a UTF-16/32 BOM) is detected as the RFC says
    except (ValueError, RecursionError):  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise Refusal(400, "bad_json", "the body is not valid JSON") from None


def _validated(data: Any) -> Asked:
    if not isinstance(data, dict):
        raise Refusal(422, "invalid", 'the body must be a JSON object: {"session_id": ..., "message": ...}')
    try:
        return Asked.model_validate(data)
    except ValidationError as exc:
        raise Refusal(422, "invalid", _problems(exc)) from None


def _problems(exc: ValidationError) -> str:
    """Each field's problem in a few words; the values sent are never echoed back."""
    problems = []
    for err in exc.errors(include_url=False, include_input=False):
        field = ".".join(str(part) for part in err["loc"]) or "body"
        problems.append(f"{field}: {str(err['msg']).removeprefix('Value error, ')}")
    return "; ".join(problems)
