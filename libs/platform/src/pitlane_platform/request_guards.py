"""What every route refuses before FastAPI looks at a request: a body over the route's limit (413) and a NUL
character in a path parameter, a query parameter or a JSON or form body (422 naming the field).

Why here and not in each model: PostgreSQL cannot store a NUL in text (psycopg refuses the statement, a 500),
and no pydantic setting forbids it in every string of every model; a body is bounded before it is read, so a
client cannot make a service buffer or spool more than the route accepts. `create_app` wraps every route with
`guard_input`, inside `auth.authenticate_first`: an anonymous request is a 401 before its body is looked at.

FastAPI's own `max_body_size` (0.165) is not used: where a route answers without reading the body (a 401),
its limiter replaces the answer with a plain-text 413, and its limit is fixed when the route is declared,
while upload limits are service settings.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qsl

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pitlane_platform.errors import InvalidInputError

NUL = "\x00"
NUL_MESSAGE = "must not contain a NUL character"
JSON_MEDIA_TYPES = ("application/json",)
FORM_MEDIA_TYPE = "application/x-www-form-urlencoded"
MULTIPART_ALLOWANCE_BYTES = 64 * 1024
"""What an upload route's body limit adds to its largest file: the form's boundaries and part headers."""


def guard_input(route_app: ASGIApp, max_body_bytes: int) -> ASGIApp:
    """The route's ASGI app behind the checks above. A Content-Length over `max_body_bytes` is refused
    before anything is read; a body sent without one (chunked) is counted as it arrives and cut at the limit.
    JSON and form bodies, bounded, are read here to be searched for NUL characters, and handed on unchanged.

    The 413 is Starlette's HTTPException: FastAPI passes that one on when it comes out of reading the body
    (anything else raised there becomes its 400 "error parsing the body"), and the app answers it as a
    problem."""

    async def guarded(scope: Scope, receive: Receive, send: Send) -> None:
        headers = Headers(scope=scope)
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > max_body_bytes:
            raise _too_large(max_body_bytes)
        _refuse_nul_in_parameters(scope)
        media_type = headers.get("content-type", "").partition(";")[0].strip().lower()
        if media_type in JSON_MEDIA_TYPES or media_type.endswith("+json") or media_type == FORM_MEDIA_TYPE:
            body = await _read_body(receive, max_body_bytes)
            _refuse_nul_in_body(body, form=media_type == FORM_MEDIA_TYPE)
            await route_app(scope, _replaying(body, receive), send)
        else:
            await route_app(scope, _counting(receive, max_body_bytes), send)

    return guarded


def _too_large(max_body_bytes: int) -> HTTPException:
    return HTTPException(413, f"the body may have at most {max_body_bytes} bytes")


def _refuse_nul_in_parameters(scope: Scope) -> None:
    for name, value in scope.get("path_params", {}).items():
        if isinstance(value, str) and NUL in value:
            raise InvalidInputError(f"path.{name}", NUL_MESSAGE)
    query: bytes = scope.get("query_string", b"")
    if b"%00" in query or b"\x00" in query:
        for name, value in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
            if NUL in name or NUL in value:
                raise InvalidInputError(f"query.{name.replace(NUL, '')}", NUL_MESSAGE)


async def _read_body(receive: Receive, max_body_bytes: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break  # the client went away; the route sees an empty body and answers it as such
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > max_body_bytes:
            raise _too_large(max_body_bytes)
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _counting(receive: Receive, max_body_bytes: int) -> Receive:
    size = 0

    async def counted() -> Message:
        nonlocal size
        message = await receive()
        if message["type"] == "http.request":
            size += len(message.get("body", b""))
            if size > max_body_bytes:
                raise _too_large(max_body_bytes)
        return message

    return counted


def _replaying(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return await receive()  # after the body: the disconnect, when it comes
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay


def _refuse_nul_in_body(body: bytes, *, form: bool) -> None:
    if form:
        if b"%00" in body or b"\x00" in body:
            for name, value in parse_qsl(body.decode("latin-1"), keep_blank_values=True):
                if NUL in name or NUL in value:
                    raise InvalidInputError(f"body.{name.replace(NUL, '')}", NUL_MESSAGE)
        return
    # JSON can carry a NUL only escaped (a raw control character is a syntax error, reported by FastAPI):
    # most bodies are passed by this byte search alone.
    if b"\\u0000" not in body:
        return
    try:
        document = json.loads(body)
    except ValueError:
        return  # FastAPI reports the syntax error, naming the body
    for place in _places_with_nul(document, ("body",)):
        raise InvalidInputError(".".join(place), NUL_MESSAGE)


def _places_with_nul(value: Any, place: tuple[str, ...]) -> Iterator[tuple[str, ...]]:
    if isinstance(value, str):
        if NUL in value:
            yield place
    elif isinstance(value, dict):
        for key, item in value.items():
            if NUL in key:
                yield (*place, key.replace(NUL, ""))
            yield from _places_with_nul(item, (*place, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _places_with_nul(item, (*place, str(index)))
