"""RFC 9457 problem details: the one shape of every error response (media type application/problem+json).

Each PitlaneError class is a problem type, identified as `urn:pitlane:problem:<its title, kebab-cased>`
(e.g. `urn:pitlane:problem:concurrent-modification`), so a service's own subclass with its own title is a
type of its own without registration. Errors outside the hierarchy (unknown route, wrong method) use
`about:blank` with the HTTP reason phrase as title, as the RFC recommends. Field-level problems list the
fields in `errors`, each as a dotted path into the request (`body.vehicle.plate`) with its message.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from pitlane_platform.auth import InvalidTokenError
from pitlane_platform.errors import InvalidInputError, PitlaneError, UnauthorizedError
from pitlane_platform.logging import describe_exception
from pitlane_platform.security.limits import TooManyRequestsError
from pitlane_platform.telemetry import current_trace_id

logger = logging.getLogger(__name__)

PROBLEM_MEDIA_TYPE = "application/problem+json"
PROBLEM_TYPE_PREFIX = "urn:pitlane:problem:"
VALIDATION_PROBLEM_TYPE = PROBLEM_TYPE_PREFIX + "validation-error"
# FastAPI (0.165) and Starlette raise a 400 only when a body cannot be read as its content type at all: bytes
# that are not UTF-8 JSON ("There was an error parsing the body"), a broken multipart form ("Invalid multipart
# data.", "Missing boundary in multipart."). JSON with a syntax error is a 422 already; to a client all are one
# problem, an invalid body. Our own code never raises a bare 400 (errors.PitlaneError carries its status).


class FieldProblem(BaseModel):
    field: str = Field(description="dotted path of the offending input, e.g. body.vehicle.plate")
    message: str


class ProblemDetails(BaseModel):
    """RFC 9457 problem details, with Pitlane's extension members."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(default="about:blank", description="URI identifying the kind of problem")
    title: str
    status: int
    detail: str | None = None
    instance: str | None = Field(default=None, description="the request path this problem occurred on")
    errors: list[FieldProblem] | None = Field(
        default=None, description="each field to fix, for invalid input"
    )
    trace_id: str | None = Field(
        default=None, description="quote it to operators; it finds the trace and logs"
    )


class ProblemResponse(JSONResponse):
    media_type = PROBLEM_MEDIA_TYPE


def problem_response(
    request: Request,
    *,
    status: int,
    title: str,
    detail: str | None = None,
    problem_type: str = "about:blank",
    errors: Sequence[FieldProblem] | None = None,
    headers: Mapping[str, str] | None = None,
    **extensions: Any,
) -> ProblemResponse:
    problem = ProblemDetails(
        type=problem_type,
        title=title,
        status=status,
        detail=detail,
        instance=request.url.path,
        errors=list(errors) if errors is not None else None,
        trace_id=current_trace_id(),
        **extensions,
    )
    return ProblemResponse(problem.model_dump(exclude_none=True), status_code=status, headers=headers)


def internal_error_response(request: Request) -> ProblemResponse:
    # Never the exception's text: it can carry SQL, file paths or customer data.
    # The trace id leads operators to the logged traceback.
    return problem_response(
        request,
        status=500,
        title="Internal error",
        detail="the request failed on our side; quote the trace id when reporting it",
        problem_type=PROBLEM_TYPE_PREFIX + "internal-error",
    )


def problem_type_of(error_class: type[PitlaneError]) -> str:
    return PROBLEM_TYPE_PREFIX + re.sub(r"[^a-z0-9]+", "-", error_class.title.lower()).strip("-")


def install_problem_handlers(app: FastAPI) -> None:
    """Unhandled exceptions are turned into 500 problems by the request middleware in http.py, which also
    sees the exceptions that Starlette would otherwise answer outside every other middleware."""
    app.add_exception_handler(RequestValidationError, _request_validation_problem)  # type: ignore[arg-type]
    app.add_exception_handler(PitlaneError, _pitlane_error_problem)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, _http_exception_problem)  # type: ignore[arg-type]


async def _request_validation_problem(request: Request, error: RequestValidationError) -> ProblemResponse:
    # The rejected input is not echoed back: it may be a customer's phone number or name.
    return _invalid_request_problem(
        request,
        [
            FieldProblem(field=".".join(str(part) for part in item["loc"]), message=item["msg"])
            for item in error.errors()
        ],
    )


def _invalid_request_problem(request: Request, field_problems: list[FieldProblem]) -> ProblemResponse:
    fields = ", ".join(problem.field for problem in field_problems)
    return problem_response(
        request,
        status=422,
        title="Invalid request",
        detail=f"the request does not match the schema: {fields}",
        problem_type=VALIDATION_PROBLEM_TYPE,
        errors=field_problems,
    )


async def _pitlane_error_problem(request: Request, error: PitlaneError) -> ProblemResponse:
    if error.status == 500:
        logger.error("request failed", extra={"error": describe_exception(error)})
        return internal_error_response(request)
    headers: dict[str, str] | None = None
    if isinstance(error, UnauthorizedError):
        headers = {"WWW-Authenticate": _bearer_challenge(error)}
    elif isinstance(error, TooManyRequestsError):
        headers = {"Retry-After": str(error.retry_after_s)}
    errors = (
        [FieldProblem(field=error.field, message=error.message)]
        if isinstance(error, InvalidInputError)
        else None
    )
    return problem_response(
        request,
        status=error.status,
        title=error.title,
        detail=str(error) or None,
        problem_type=problem_type_of(type(error)),
        errors=errors,
        headers=headers,
    )


def _bearer_challenge(error: UnauthorizedError) -> str:
    # RFC 6750 §3: name the error only when a token was presented; a missing token gets the bare challenge.
    if isinstance(error, InvalidTokenError):
        description = str(error).replace("\\", "").replace('"', "'")
        return f'Bearer error="invalid_token", error_description="{description}"'
    return "Bearer"


async def _http_exception_problem(request: Request, error: StarletteHTTPException) -> ProblemResponse:
    if error.status_code == 400:
        reason = f" ({error.detail.rstrip('.')})" if isinstance(error.detail, str) else ""
        return _invalid_request_problem(
            request,
            [FieldProblem(field="body", message=f"cannot be read as the content type it is sent as{reason}")],
        )
    title = HTTPStatus(error.status_code).phrase
    detail = error.detail if isinstance(error.detail, str) and error.detail != title else None
    return problem_response(
        request, status=error.status_code, title=title, detail=detail, headers=error.headers
    )
