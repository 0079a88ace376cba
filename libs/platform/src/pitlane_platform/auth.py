"""Who is calling: bearer JWTs verified into a `Principal`, and FastAPI dependencies that demand one.

Development signs tokens with HS256 and `settings.jwt_secret` (`pitlane token` mints them); production
verifies RS256/ES256 tokens of an OIDC provider against its JWKS (`settings.oidc_jwks_url`). A deployment
trusts exactly one of the two: with a JWKS URL configured, HS256 tokens are refused, so a leaked development
secret opens nothing and no token can pass off the provider's public key as an HMAC secret.

`create_app` stores one `Authenticator` on `app.state.authenticator`; the dependencies find it there.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any, TypeVar

import anyio
import jwt
from fastapi import Depends, FastAPI, Request
from opentelemetry import trace
from pydantic import SecretStr
from starlette.types import ASGIApp, Receive, Scope, Send

from pitlane_platform.errors import ForbiddenError, PitlaneError, UnauthorizedError
from pitlane_platform.settings import ServiceSettings
from pitlane_platform.telemetry import spans_are_exported

ALL_BRANCHES = "*"
HMAC_ALGORITHMS: tuple[str, ...] = ("HS256",)
OIDC_ALGORITHMS: tuple[str, ...] = ("RS256", "ES256")
# Tolerated difference between the issuer's clock and ours when checking exp/iat.
CLOCK_SKEW = timedelta(seconds=30)
# Verified tokens remembered per process, least recently used dropped first (a busy branch has tens of staff).
VERIFIED_TOKENS_KEPT = 10_000
# How long fetched signing keys are trusted before the JWKS is read again; an unknown `kid` (key rotation)
# triggers a refetch sooner, rate-limited by PyJWKClient's cool-down.
JWKS_CACHE_SECONDS = 300
JWKS_FETCH_TIMEOUT_SECONDS = 5
REQUIRED_REGISTERED_CLAIMS = ("sub", "exp", "iat", "iss", "aud")


class Role(StrEnum):
    OWNER = "owner"  # the whole chain
    MANAGER = "manager"  # one or more branches
    ADVISOR = "advisor"  # front desk
    TECHNICIAN = "technician"
    FINANCE = "finance"
    ANALYST = "analyst"


# Only these roles may hold a token for every branch (`"branches": ["*"]`).
CHAIN_WIDE_ROLES = frozenset({Role.OWNER, Role.ANALYST})


class InvalidTokenError(UnauthorizedError):
    """A bearer token was presented but cannot be trusted (signature, expiry, audience, issuer, claims)."""

    title = "Invalid token"


class IdentityProviderUnavailableError(PitlaneError):
    """The OIDC provider's keys could not be fetched: the caller's token may be fine, so this is not a 401."""

    status = 503
    title = "Identity provider unavailable"


@dataclass(frozen=True)
class Principal:
    user_id: str
    role: Role
    branches: frozenset[str]
    chain_id: str

    @property
    def is_chain_wide(self) -> bool:
        return ALL_BRANCHES in self.branches

    def can_access_branch(self, branch_id: str) -> bool:
        return self.is_chain_wide or branch_id in self.branches

    @property
    def sees_full_phone_numbers(self) -> bool:
        """Technicians work on cars, not customers: services mask phone numbers for them."""
        return self.role is not Role.TECHNICIAN


def principal_from_claims(claims: Mapping[str, Any]) -> Principal:
    """The principal of verified claims; raises InvalidTokenError when Pitlane's own claims are malformed."""
    try:
        role = Role(str(claims.get("role")))
    except ValueError:
        raise InvalidTokenError(f"claim 'role' must be one of {', '.join(Role)}") from None
    branches = claims.get("branches")
    if not isinstance(branches, list) or not all(isinstance(b, str) and b for b in branches):
        raise InvalidTokenError("claim 'branches' must be a list of branch ids")
    if ALL_BRANCHES in branches and role not in CHAIN_WIDE_ROLES:
        raise InvalidTokenError(f"only owner and analyst tokens may cover every branch ('*'), not {role}")
    user_id, chain_id = claims.get("sub"), claims.get("chain")
    if not isinstance(user_id, str) or not user_id:
        raise InvalidTokenError("claim 'sub' must name the user")
    if not isinstance(chain_id, str) or not chain_id:
        raise InvalidTokenError("claim 'chain' must name the chain")
    return Principal(user_id=user_id, role=role, branches=frozenset(branches), chain_id=chain_id)


class Authenticator:
    """Verifies bearer tokens the way the service's settings say; one per application."""

    def __init__(self, settings: ServiceSettings) -> None:
        self._issuer = settings.jwt_issuer
        self._audience = settings.jwt_audience
        self._chain_id = settings.chain_id
        self._max_lifetime_s = settings.jwt_max_lifetime.total_seconds()
        self._hmac_secret = settings.jwt_secret.get_secret_value()
        self._verified: OrderedDict[str, tuple[Principal, float]] = OrderedDict()
        self._jwks_client = (
            jwt.PyJWKClient(
                settings.oidc_jwks_url,
                cache_keys=True,
                lifespan=JWKS_CACHE_SECONDS,
                timeout=JWKS_FETCH_TIMEOUT_SECONDS,
            )
            if settings.oidc_jwks_url
            else None
        )

    def verify(self, token: str) -> Principal:
        """Blocking when the JWKS must be fetched; from async code use `verify_async`.

        A token once verified is remembered until it expires (a signature check per request is about a
        tenth of a lookup's CPU); a remembered token past its `exp` (with the clock skew) is verified again,
        which refuses it.
        """
        remembered = self._verified.get(token)
        if remembered is not None:
            principal, expires_at = remembered
            if time.time() <= expires_at:
                self._verified.move_to_end(token)
                return principal
            del self._verified[token]
        principal, expires_at = self._verify_signature_and_claims(token)
        self._verified[token] = (principal, expires_at)
        if len(self._verified) > VERIFIED_TOKENS_KEPT:
            self._verified.popitem(last=False)
        return principal

    def _verify_signature_and_claims(self, token: str) -> tuple[Principal, float]:
        try:
            if self._jwks_client is None:
                key: Any = self._hmac_secret
                algorithms = HMAC_ALGORITHMS
            else:
                key = self._jwks_client.get_signing_key_from_jwt(token).key
                algorithms = OIDC_ALGORITHMS
            claims = jwt.decode(
                token,
                key,
                algorithms=list(algorithms),
                audience=self._audience,
                issuer=self._issuer,
                leeway=CLOCK_SKEW,
                options={"require": list(REQUIRED_REGISTERED_CLAIMS)},
            )
        except jwt.PyJWKClientConnectionError as error:
            raise IdentityProviderUnavailableError("the signing keys could not be fetched") from error
        # The messages (the problem's detail and the WWW-Authenticate challenge) never name the issuer,
        # audience or chain this service expects: a caller probing with forged tokens learns nothing to
        # forge a better one with.
        except jwt.ExpiredSignatureError:
            raise InvalidTokenError("the token has expired") from None
        except jwt.InvalidAudienceError:
            raise InvalidTokenError("the token is not meant for this service (audience)") from None
        except jwt.InvalidIssuerError:
            raise InvalidTokenError("the token was not issued by the trusted issuer") from None
        except (jwt.InvalidTokenError, jwt.PyJWKClientError) as error:
            raise InvalidTokenError(f"the token cannot be verified: {error}") from None
        expires_at = float(claims["exp"])
        # From its issue, or from now for a token claiming to be issued later (never more than the skew).
        if (
            expires_at - min(float(claims["iat"]), time.time())
            > self._max_lifetime_s + CLOCK_SKEW.total_seconds()
        ):
            raise InvalidTokenError("the token lives longer than this service accepts (exp - iat)")
        principal = principal_from_claims(claims)
        if principal.chain_id != self._chain_id:
            raise InvalidTokenError("the token is for another chain")
        return principal, expires_at + CLOCK_SKEW.total_seconds()

    async def verify_async(self, token: str) -> Principal:
        if self._jwks_client is None or token in self._verified:
            return self.verify(token)
        # PyJWKClient fetches keys with blocking urllib; keep that off the event loop.
        return await anyio.to_thread.run_sync(self.verify, token)


def install_authenticator(app: FastAPI, settings: ServiceSettings) -> None:
    app.state.authenticator = Authenticator(settings)


F = TypeVar("F", bound=Callable[..., Any])

BEARER_SCHEME_NAME = "HTTPBearer"
BEARER_SCHEME = {
    "type": "http",
    "scheme": "bearer",
    "bearerFormat": "JWT",
    "description": "JWT issued by the chain's identity provider",
}


def requires_bearer_token(dependency: F) -> F:
    """Mark a dependency as demanding a bearer token, so the OpenAPI document says so for every operation
    that depends on it (FastAPI's own security classes would say it too, at a dependency level more per
    request)."""
    dependency.requires_bearer_token = True  # type: ignore[attr-defined]
    return dependency


# Where `authenticate_first` leaves the verified caller for the route's dependencies.
PRINCIPAL_SCOPE_KEY = "pitlane.principal"


def authenticate_first(route_app: ASGIApp) -> ASGIApp:
    """The route's ASGI app, preceded by the bearer-token check. FastAPI validates headers, reads a body and
    parses a multipart upload before it runs the dependency that authenticates: without this, a request with
    no token and a malformed `If-Match` is a 422 that tells an anonymous caller about the API's inputs, and an
    anonymous upload is read whole before its 401. `create_app` wraps every route whose dependencies demand a
    token; the 401 raised here reaches the app's problem handlers like any other."""

    async def authenticated(scope: Scope, receive: Receive, send: Send) -> None:
        scope[PRINCIPAL_SCOPE_KEY] = await _authenticate(Request(scope))
        await route_app(scope, receive, send)

    return authenticated


@requires_bearer_token
async def current_principal(request: Request) -> Principal:
    """The verified caller; 401 problem when the bearer token is missing or cannot be trusted."""
    principal: Principal | None = request.scope.get(PRINCIPAL_SCOPE_KEY)
    # Verified here only for a route that did not come through `create_app` (so nothing is ever unchecked).
    return principal if principal is not None else await _authenticate(request)


async def _authenticate(request: Request) -> Principal:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise UnauthorizedError("an 'Authorization: Bearer <token>' header is required")
    authenticator: Authenticator | None = getattr(request.app.state, "authenticator", None)
    if authenticator is None:
        raise RuntimeError(
            "no Authenticator on app.state: build the app with pitlane_platform.http.create_app"
        )
    principal = await authenticator.verify_async(token)
    if spans_are_exported():
        trace.get_current_span().set_attributes(
            {"user.id": principal.user_id, "user.roles": [str(principal.role)]}
        )
    return principal


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]


def require_roles(*roles: Role | str) -> Callable[..., Awaitable[Principal]]:
    """A dependency that yields the principal when its role is one of `roles`, else a 403 problem. One
    dependency, not one on top of `current_principal`: each level costs FastAPI work on every request."""
    if not roles:
        raise ValueError("require_roles needs at least one role")
    allowed = frozenset(Role(role) for role in roles)  # an unknown role name fails at import, not per request
    allowed_names = ", ".join(sorted(allowed))

    @requires_bearer_token
    async def principal_with_allowed_role(request: Request) -> Principal:
        principal = await current_principal(request)
        if principal.role not in allowed:
            raise ForbiddenError(
                f"this needs one of the roles {allowed_names}; the token's role is {principal.role}"
            )
        return principal

    return principal_with_allowed_role


def require_branch_access(principal: Principal, branch_id: str) -> None:
    """403 problem naming the branch unless the token covers it."""
    if not principal.can_access_branch(branch_id):
        raise ForbiddenError(f"branch {branch_id} is not among the branches of this token")


def mint_dev_token(
    settings_or_secret: ServiceSettings | SecretStr | str,
    *,
    role: Role | str,
    branches: Iterable[str],
    sub: str,
    chain: str | None = None,
    ttl: timedelta = timedelta(hours=8),
    issuer: str | None = None,
    audience: str | None = None,
) -> str:
    """An HS256 token as the dev verifier expects it. With settings, the issuer, audience, chain and maximum
    lifetime are theirs; with a bare secret they default to ServiceSettings' defaults unless given."""
    defaults = ServiceSettings.model_fields
    max_lifetime: timedelta = defaults["jwt_max_lifetime"].default
    if isinstance(settings_or_secret, ServiceSettings):
        settings = settings_or_secret
        if settings.oidc_jwks_url:
            raise ValueError("these settings verify tokens of an OIDC provider; a dev token would be refused")
        secret = settings.jwt_secret.get_secret_value()
        issuer, audience, chain = settings.jwt_issuer, settings.jwt_audience, chain or settings.chain_id
        max_lifetime = settings.jwt_max_lifetime
    else:
        secret = (
            settings_or_secret.get_secret_value()
            if isinstance(settings_or_secret, SecretStr)
            else settings_or_secret
        )
        issuer = issuer or defaults["jwt_issuer"].default
        audience = audience or defaults["jwt_audience"].default
        chain = chain or defaults["chain_id"].default
    if ttl > max_lifetime:
        raise ValueError(f"a token may live at most {max_lifetime} (jwt_max_lifetime), not {ttl}")
    issued_at = datetime.now(UTC)
    claims = {
        "sub": sub,
        "role": str(Role(role)),
        "branches": sorted(set(branches)),
        "chain": chain,
        "iss": issuer,
        "aud": audience,
        "iat": issued_at,
        "exp": issued_at + ttl,
    }
    try:
        principal_from_claims(claims)  # refuse to mint what the verifier would refuse
    except InvalidTokenError as error:
        raise ValueError(str(error)) from None
    return jwt.encode(claims, secret, algorithm=HMAC_ALGORITHMS[0])
