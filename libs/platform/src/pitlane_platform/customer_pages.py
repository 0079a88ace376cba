"""Errors on a customer's pages are pages: a phone's browser shows problem+json as text. A service that
serves pages to customers under a path prefix (`/n`, `/r`) gives the page for a status; everywhere else
errors stay the platform's problem+json. Wraps the handlers `http.create_app` installed."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, Literal, cast

from fastapi import FastAPI, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from pitlane_platform.errors import PitlaneError

log = logging.getLogger(__name__)

ErrorPage = Callable[[Request, int], Response]

Language = Literal["zh-CN", "en"]
# `?lang=` on every customer page: zh-CN by default, English on request.
Lang = Annotated[Language | None, Query(description="zh-CN (default) or en")]
HTML = {"text/html": {"schema": {"type": "string"}}}
# Every customer page (forms, no script, no images): nobody's frame, its link's token never leaves in a
# Referer, nothing of it stays in a cache.
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
    "base-uri 'none'; frame-ancestors 'none'",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def language(lang: str | None, default: str | None = None) -> Language:
    chosen = lang or default
    return "en" if chosen == "en" else "zh-CN"


def page_responses(errors: dict[int, str]) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI answers of a customer page: HTML, and each error status as a page, described."""
    pages: dict[int | str, dict[str, Any]] = {200: {"content": HTML}}
    pages.update({status: {"description": text, "content": HTML} for status, text in errors.items()})
    return pages


def install_error_pages(app: FastAPI, prefix: str, page: ErrorPage) -> None:
    """Under `prefix`, an error is `page(request, status)`; a 5xx is logged as the platform logs it. Install
    it after the service's own problem handlers: those of errors more specific than PitlaneError (a 409 that
    suggests slots) are wrapped too, or they would answer the customer's pages with problem+json."""
    for error_class in list(app.exception_handlers):
        if error_class in (RequestValidationError, StarletteHTTPException) or (
            isinstance(error_class, type) and issubclass(error_class, PitlaneError)
        ):
            problem = cast(Callable[[Request, Any], Awaitable[Response]], app.exception_handlers[error_class])
            app.add_exception_handler(error_class, _page_or(problem, prefix, page))


def error_status(error: Exception) -> int:
    if isinstance(error, PitlaneError):
        return error.status
    if isinstance(error, StarletteHTTPException):
        return error.status_code
    return 422  # a form or a link that does not fit


def _page_or(
    problem: Callable[[Request, Any], Awaitable[Response]], prefix: str, page: ErrorPage
) -> Callable[..., Awaitable[Response]]:
    async def page_or_problem(request: Request, error: Exception) -> Response:
        if not request.url.path.startswith(prefix + "/"):
            return await problem(request, error)
        status = error_status(error)
        if status >= 500:
            log.error("customer page failed", exc_info=error)
        return page(request, status)

    return page_or_problem
