"""The FastAPI application every service serves: auth, problem+json errors, request ids, probes, tracing,
the audit trail and abuse limits.

A service builds its app with `create_app(settings, title=..., version=..., routers=[...])` and adds nothing
of its own for these concerns, so every service answers errors, probes and traces the same way.
"""

from __future__ import annotations

import asyncio
import copy
import functools
import importlib.resources
import logging
import re
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.dependencies.models import Dependant
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.routing import APIRoute
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode
from pydantic import BaseModel, Field
from starlette.datastructures import Headers, MutableHeaders
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Lifespan, Message, Receive, Scope, Send

from pitlane_events.codec import TRACEPARENT_HEADER
from pitlane_platform.auth import (
    BEARER_SCHEME,
    BEARER_SCHEME_NAME,
    authenticate_first,
    install_authenticator,
)
from pitlane_platform.logging import configure_logging, describe_exception, redact_url, request_id_var
from pitlane_platform.problems import (
    PROBLEM_MEDIA_TYPE,
    PROBLEM_TYPE_PREFIX,
    ProblemDetails,
    ProblemResponse,
    install_problem_handlers,
    internal_error_response,
    problem_response,
)
from pitlane_platform.request_guards import guard_input
from pitlane_platform.security.audit import AuditMiddleware, AuditTrail, audit_router
from pitlane_platform.security.limits import RequestLimiter, UserLimit
from pitlane_platform.settings import ServiceSettings
from pitlane_platform.telemetry import (
    context_from_headers,
    instrument_app,
    setup_telemetry,
    spans_are_exported,
)

logger = logging.getLogger(__name__)

ReadinessCheck = Callable[[], Awaitable[None]]

API_PREFIX = "/v1"
REQUEST_ID_HEADER = "X-Request-ID"
# A caller's request id is echoed into headers and logs, so only short, plain ones are taken over.
ACCEPTED_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
# A dependency that does not answer within this is as good as down, and a probe must not hang.
READINESS_CHECK_TIMEOUT_SECONDS = 3.0
# What any /v1 route may answer besides its own responses; listed in the OpenAPI document of each one (401
# only on those that demand a token).
API_PROBLEM_RESPONSES = {
    401: "Missing, expired or otherwise untrusted bearer token",
    403: "The token's role or branches do not allow this",
    404: "No such resource",
    409: "The command conflicts with the current state, or someone else changed it first",
    422: "Invalid input; `errors` names each field",
}
# Where tokens are verified against an OIDC provider's keys, fetching them may fail (auth.py).
IDENTITY_PROVIDER_DOWN = "The identity provider's signing keys cannot be fetched; the token may be fine"
TOO_MANY_REQUESTS = "Over the route's limit for this caller; retry after the seconds in Retry-After"
RETRY_AFTER_HEADER = {
    "description": "seconds until the window has room again",
    "schema": {"type": "integer", "minimum": 1},
}
DOCS_PATH = "/docs"
DOCS_ASSETS_PATH = DOCS_PATH + "/assets"
# Swagger UI 5.34.0 as the pinned fastapi-swagger release ships it; only these files are served.
SWAGGER_UI_PACKAGE = "fastapi_swagger.resources"
SWAGGER_UI_ASSETS = {
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui.css": "text/css",
    "favicon-32x32.png": "image/png",
}
# The files change only with the package's version, i.e. with a new release of the service.
DOCS_ASSET_MAX_AGE_S = 24 * 3600
# FastAPI documents its own validation error body; ours is a problem, so these schemas would only mislead.
FASTAPI_VALIDATION_SCHEMAS = ("HTTPValidationError", "ValidationError")


def create_app(
    settings: ServiceSettings,
    *,
    title: str,
    version: str,
    routers: Sequence[APIRouter],
    readiness_checks: Sequence[ReadinessCheck] = (),
    lifespan: Lifespan[FastAPI] | None = None,
    audit: AuditTrail | None = None,
    user_limits: Sequence[UserLimit] = (),
    max_body_bytes: Mapping[str, int] | None = None,
) -> FastAPI:
    """The service's ASGI app. Readiness checks are async callables named after what they check
    (`async def database() -> None`); raising, or taking longer than a few seconds, means not ready.

    A service passes its runtime's `audit` (`ServiceRuntime.audit`): every authenticated request is then on
    the trail and owners read it at `GET /v1/audit`; only the platform's own tests of the HTTP plumbing
    build apps without one. `user_limits` name the routes counted per user; every route that demands no
    token is counted per client address (`settings.public_rate_limit`).

    Every route accepts a body of at most `settings.max_body_bytes`; `max_body_bytes` gives routes that take
    more (uploads) their own limit, by path as declared (`{"/v1/branches/{branch_id}/media": 64 << 20}`)."""
    setup_telemetry(
        settings.service_name, otlp_endpoint=settings.otlp_endpoint, sample_ratio=settings.otel_sample_ratio
    )
    configure_logging(settings.service_name, settings.log_level)

    # FastAPI's own telemetry off: it would start spans, metrics and exception logs of its own whenever the
    # instrumentor is absent. Spans come from the instrumentor, and only when something exports them.
    # FastAPI's own /docs and /redoc load their scripts from a CDN (blank offline): /docs is ours, below.
    app = FastAPI(
        title=title,
        version=version,
        lifespan=lifespan,
        telemetry={"tracing": False, "metrics": False, "logs": False},
        docs_url=None,
        redoc_url=None,
        swagger_ui_oauth2_redirect_url=None,
    )
    app.state.settings = settings
    install_authenticator(app, settings)
    install_problem_handlers(app)
    if audit is not None:
        app.add_middleware(AuditMiddleware, trail=audit)  # inside the next: the request id is known
    app.add_middleware(RequestContextMiddleware)
    bodies = BodyLimits(settings.max_body_bytes, dict(max_body_bytes or {}))
    for router in (_probes_router(readiness_checks), _docs_router(app)):
        add_routes(app, router, bodies=bodies)
    limits = RouteLimits(RequestLimiter(), settings.public_rate_limit, user_limits)
    for router in (*routers, *([audit_router(audit)] if audit is not None else [])):
        add_routes(app, router, bodies=bodies, limits=limits)
    limits.check_all_applied()
    bodies.check_all_applied()
    app.state.rate_limited_routes = limits.applied
    app.openapi = lambda: _openapi_with_problem_responses(app)  # type: ignore[method-assign]
    if spans_are_exported():
        instrument_app(app)
    return app


class RouteLimits:
    """Which limit goes in front of which route: the per-user ones by (method, path), the per-client one on
    every route that demands no token."""

    def __init__(self, limiter: RequestLimiter, public_rate: str, user_limits: Sequence[UserLimit]) -> None:
        self.limiter = limiter
        self.public_rate = public_rate
        self.per_user = {(limit.method, limit.path): limit for limit in user_limits}
        self.applied: set[tuple[str, str]] = set()

    def check_all_applied(self) -> None:
        missing = set(self.per_user) - self.applied
        if missing:  # a renamed route must not silently lose its limit
            raise ValueError(f"user limits name routes the app does not have: {sorted(missing)}")


@dataclass
class BodyLimits:
    """How large a body each route accepts: `default`, or the route's own by path as declared (uploads)."""

    default: int
    per_path: dict[str, int]
    applied: set[str] = field(default_factory=set)

    def for_route(self, path: str) -> int:
        if path in self.per_path:
            self.applied.add(path)
            return self.per_path[path]
        return self.default

    def check_all_applied(self) -> None:
        unknown = set(self.per_path) - self.applied
        if unknown:
            raise ValueError(f"body limits for paths no route has: {', '.join(sorted(unknown))}")


def add_routes(
    app: FastAPI, router: APIRouter, *, bodies: BodyLimits, limits: RouteLimits | None = None
) -> None:
    """The router's routes, straight onto the app. `include_router` keeps an included router as one route
    that FastAPI (0.165) matches a request against twice, route by route, with scope bookkeeping at each —
    ≈ 6 µs per route per request, a tenth of a lookup's CPU in a service of 30 routes; flat routes cost a
    third of that. Our routers carry their prefix and dependencies on each route (APIRouter applies them when
    a route is declared), so nothing an include would add is lost.

    Each route goes behind its checks, outermost first:
    - a route that demands no token counts the client's address (with `limits`): over its limit is a 429
      before anything is read;
    - a route that demands a bearer token checks it before FastAPI looks at the request's headers and body
      (`auth.authenticate_first`): no token is a 401, whatever else is wrong with the request, and an
      anonymous upload is refused before a byte of it is read; a route named by a user limit then counts the
      verified caller;
    - the body is bounded and NUL characters are refused (`request_guards.guard_input`)."""
    for shared_route in router.routes:
        # A copy per app: routers are module globals, and the wrappers below hold this app's limiter and
        # limits (an app built in the same process, as tests do, must not inherit another app's).
        route = copy.copy(shared_route)
        if isinstance(route, APIRoute):
            route.app = guard_input(route.app, bodies.for_route(route.path_format))
            demands_token = _demands_bearer_token(route.dependant)
            if limits is not None:
                _limit(route, limits, demands_token=demands_token)
            if demands_token:
                route.app = authenticate_first(route.app)
        app.router.routes.append(route)


def _limit(route: APIRoute, limits: RouteLimits, *, demands_token: bool) -> None:
    keys = [(method, route.path) for method in sorted(route.methods or ())]
    for key in keys:
        user_limit = limits.per_user.get(key)
        if user_limit is None:
            continue
        if not demands_token:
            raise ValueError(f"{key[0]} {key[1]} demands no token: it cannot be limited per user")
        route.app = limits.limiter.per_user(route.app, user_limit)
        limits.applied.add(key)
    if not demands_token:
        route.app = limits.limiter.per_client(route.app, path=route.path, rate=limits.public_rate)
        limits.applied.update(keys)


class RequestContextMiddleware:
    """Gives each request an id (the caller's X-Request-ID, or a new one) for logs, spans and the
    response, and turns an unhandled exception into a 500 problem. Answering here rather than in an
    `Exception` handler matters: Starlette runs that handler outside all middleware, so the 500 would
    lose its request id."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        offered = headers.get(REQUEST_ID_HEADER)
        request_id = offered if offered and ACCEPTED_REQUEST_ID.fullmatch(offered) else uuid.uuid4().hex
        # Untraced (nothing exports spans): the caller's trace context is still made current, so the events
        # this request causes carry it on to consumers that do export.
        caller_trace = (
            otel_context.attach(context_from_headers({TRACEPARENT_HEADER: headers[TRACEPARENT_HEADER]}))
            if TRACEPARENT_HEADER in headers and not spans_are_exported()
            else None
        )
        span = trace.get_current_span()
        span.set_attribute("pitlane.request_id", request_id)
        response_started = False

        async def send_with_request_id(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
                MutableHeaders(scope=message).append(REQUEST_ID_HEADER, request_id)
            await send(message)

        reset_token = request_id_var.set(request_id)
        try:
            await self.app(scope, receive, send_with_request_id)
        except Exception as error:
            # The traceback as describe_exception tells it, to every handler: never a query string, a
            # customer link's token or the data a database error quotes.
            logger.error(
                "unhandled error in %s %s",
                scope["method"],
                redact_url(scope["path"]),
                extra={"error": describe_exception(error)},
            )
            span.record_exception(error)
            span.set_status(Status(StatusCode.ERROR, type(error).__name__))
            if response_started:
                raise  # too late for a problem body; the server aborts the response
            await internal_error_response(Request(scope))(scope, receive, send_with_request_id)
        finally:
            request_id_var.reset(reset_token)
            if caller_trace is not None:
                otel_context.detach(caller_trace)


class Health(BaseModel):
    status: Literal["ok"]


class Readiness(BaseModel):
    status: Literal["ready"]
    checks: list[str] = Field(description="what was checked, each by name")


def _probes_router(readiness_checks: Sequence[ReadinessCheck]) -> APIRouter:
    router = APIRouter(tags=["probes"])

    @router.get("/health", summary="Liveness: the process is running")
    async def health() -> Health:
        return Health(status="ok")

    @router.get(
        "/ready",
        summary="Readiness: every dependency answers",
        responses={503: _problem_response_doc("A dependency does not answer; the problem names it")},
        response_model=Readiness,
    )
    async def ready(request: Request) -> Readiness | ProblemResponse:
        outcomes = await asyncio.gather(*(_failure_of(check) for check in readiness_checks))
        failures = {
            _check_name(check): failure
            for check, failure in zip(readiness_checks, outcomes, strict=True)
            if failure
        }
        if failures:
            return problem_response(
                request,
                status=503,
                title="Not ready",
                detail="not ready: " + ", ".join(f"{name} ({reason})" for name, reason in failures.items()),
                problem_type=PROBLEM_TYPE_PREFIX + "not-ready",
                failing_checks=list(failures),
            )
        return Readiness(status="ready", checks=[_check_name(check) for check in readiness_checks])

    return router


def _docs_router(app: FastAPI) -> APIRouter:
    """Swagger UI at /docs, its script, style sheet and icon served by the service itself from the pinned
    `fastapi-swagger` package: the page works on a machine with no internet, and loads nothing from outside."""
    router = APIRouter(include_in_schema=False)

    @router.get(DOCS_PATH)
    async def swagger_ui(request: Request) -> HTMLResponse:
        # Behind a proxy that strips a prefix (`/api/<service>/`), the root path leads back to this service.
        root = request.scope.get("root_path", "").rstrip("/")
        return get_swagger_ui_html(
            openapi_url=root + (app.openapi_url or "/openapi.json"),
            title=f"{app.title} — API",
            swagger_js_url=f"{root}{DOCS_ASSETS_PATH}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{DOCS_ASSETS_PATH}/swagger-ui.css",
            swagger_favicon_url=f"{root}{DOCS_ASSETS_PATH}/favicon-32x32.png",
            # Swagger UI would send the document to validator.swagger.io for a badge.
            swagger_ui_parameters={"validatorUrl": None},
        )

    @router.get(DOCS_ASSETS_PATH + "/{name}")
    async def swagger_ui_asset(name: str) -> Response:
        media_type = SWAGGER_UI_ASSETS.get(name)
        if media_type is None:
            raise StarletteHTTPException(404)
        return Response(
            _swagger_ui_asset(name),
            media_type=media_type,
            headers={"Cache-Control": f"public, max-age={DOCS_ASSET_MAX_AGE_S}"},
        )

    return router


@functools.cache
def _swagger_ui_asset(name: str) -> bytes:
    return importlib.resources.files(SWAGGER_UI_PACKAGE).joinpath(name).read_bytes()


def _check_name(check: ReadinessCheck) -> str:
    return getattr(check, "__name__", type(check).__name__)


async def _failure_of(check: ReadinessCheck) -> str | None:
    """Why the check failed, or None. The response names only the exception type; the log has the rest,
    since a driver's message can reveal hosts and credentials."""
    try:
        async with asyncio.timeout(READINESS_CHECK_TIMEOUT_SECONDS):
            await check()
    except TimeoutError:
        logger.warning("readiness check %s timed out", _check_name(check))
        return "timed out"
    except Exception as error:
        logger.warning(
            "readiness check %s failed", _check_name(check), extra={"error": describe_exception(error)}
        )
        return type(error).__name__
    return None


def _problem_response_doc(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/ProblemDetails"}}},
    }


def _openapi_with_problem_responses(app: FastAPI) -> dict[str, Any]:
    if app.openapi_schema is None:
        document = FastAPI.openapi(app)  # generates and caches on app.openapi_schema; completed in place
        _add_bearer_security(app, document)
        _add_problem_responses(document, verifies_with_jwks=bool(app.state.settings.oidc_jwks_url))
        _add_rate_limited_responses(document, app.state.rate_limited_routes)
    return app.openapi_schema  # type: ignore[return-value]


def _add_bearer_security(app: FastAPI, document: dict[str, Any]) -> None:
    """Every operation whose dependencies demand a bearer token says so (`auth.requires_bearer_token`)."""
    document.setdefault("components", {}).setdefault("securitySchemes", {})[BEARER_SCHEME_NAME] = (
        BEARER_SCHEME
    )
    for route in app.routes:
        if isinstance(route, APIRoute) and _demands_bearer_token(route.dependant):
            operations = document["paths"].get(route.path_format, {})
            for method in route.methods or ():
                if method.lower() in operations:
                    operations[method.lower()]["security"] = [{BEARER_SCHEME_NAME: []}]


def _demands_bearer_token(dependant: Dependant) -> bool:
    return any(
        getattr(dependency.call, "requires_bearer_token", False) or _demands_bearer_token(dependency)
        for dependency in dependant.dependencies
    )


def _answers_in_its_own_media_type(response: dict[str, Any]) -> bool:
    """A response the route documents with content of its own (not FastAPI's JSON default) is kept as is."""
    content = response.get("content", {})
    return bool(content) and "application/json" not in content


def _add_rate_limited_responses(document: dict[str, Any], limited: set[tuple[str, str]]) -> None:
    """429 with Retry-After on every limited operation; in the operation's own media type where it answers
    its errors in one (the customer's HTML pages), as problem+json elsewhere."""
    for method, path in limited:
        operation = document["paths"].get(path, {}).get(method.lower())
        if operation is None:
            continue
        responses = operation["responses"]
        own = next(
            (
                doc
                for code, doc in responses.items()
                if code.startswith("4") and _answers_in_its_own_media_type(doc)
            ),
            None,
        )
        doc = (
            {"description": TOO_MANY_REQUESTS, "content": own["content"]}
            if own is not None
            else _problem_response_doc(TOO_MANY_REQUESTS)
        )
        doc["headers"] = {"Retry-After": RETRY_AFTER_HEADER}
        responses["429"] = doc


def _add_problem_responses(document: dict[str, Any], *, verifies_with_jwks: bool) -> None:
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    problem_schema = ProblemDetails.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas.update(problem_schema.pop("$defs", {}))
    schemas[ProblemDetails.__name__] = problem_schema

    for path, operations in document.get("paths", {}).items():
        under_api = path == API_PREFIX or path.startswith(API_PREFIX + "/")
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            statuses = API_PROBLEM_RESPONSES if under_api else {422: API_PROBLEM_RESPONSES[422]}
            if "security" not in operation:  # only the authenticator answers 401, and only where it runs
                statuses = {status: text for status, text in statuses.items() if status != 401}
            elif verifies_with_jwks:
                statuses = {**statuses, 503: IDENTITY_PROVIDER_DOWN}
            for status, default_description in statuses.items():
                code = str(status)
                if _answers_in_its_own_media_type(responses.get(code, {})):
                    continue  # e.g. an HTML error page a route documents itself
                if under_api or code in responses:
                    # A route's own description (e.g. "no such work order") is kept, except FastAPI's
                    # automatic 422 "Validation Error", which describes a body we never send.
                    own_description = responses.get(code, {}).get("description")
                    keep_own = own_description is not None and status != 422
                    responses[code] = _problem_response_doc(
                        own_description if keep_own else default_description
                    )

    for name in FASTAPI_VALIDATION_SCHEMAS:
        schemas.pop(name, None)
