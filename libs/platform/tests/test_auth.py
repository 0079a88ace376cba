"""Bearer-token auth through a real app: HS256 dev tokens, an OIDC JWKS served over real HTTP, the CLI."""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import json
import string
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Annotated, Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from fastapi import APIRouter, Depends, Header, Request, UploadFile
from fastapi.testclient import TestClient
from hypothesis import assume, given
from hypothesis import settings as settings_of_hypothesis
from hypothesis import strategies as st
from pydantic import BaseModel
from typer.testing import CliRunner

from pitlane_platform.auth import (
    CLOCK_SKEW,
    Authenticator,
    CurrentPrincipal,
    InvalidTokenError,
    Principal,
    Role,
    mint_dev_token,
    require_branch_access,
    require_roles,
)
from pitlane_platform.cli import app as cli_app
from pitlane_platform.http import IDENTITY_PROVIDER_DOWN, create_app
from pitlane_platform.settings import ServiceSettings

SECRET = "test-secret-of-the-auth-tests-32-bytes-or-more"


def make_settings(**overrides: Any) -> ServiceSettings:
    values: dict[str, Any] = {
        "service_name": "auth-test",
        "database_url": "postgresql://unused",
        "nats_url": "nats://unused",
        "jwt_secret": SECRET,
        "chain_id": "chain-1",
    }
    return ServiceSettings(**(values | overrides))


def api_router() -> APIRouter:
    router = APIRouter(prefix="/v1")

    @router.get("/me")
    async def me(principal: CurrentPrincipal) -> dict[str, Any]:
        return {
            "user_id": principal.user_id,
            "role": principal.role,
            "branches": sorted(principal.branches),
            "chain_id": principal.chain_id,
        }

    @router.get("/ledger")
    async def ledger(
        principal: Annotated[Principal, Depends(require_roles(Role.FINANCE, Role.OWNER))],
    ) -> str:
        return principal.user_id

    @router.get("/branches/{branch_id}/work-orders")
    async def work_orders(branch_id: str, principal: CurrentPrincipal) -> list[str]:
        require_branch_access(principal, branch_id)
        return []

    @router.get("/opening-hours")
    async def opening_hours() -> list[str]:
        return []

    @router.post("/work-orders/{work_order_id}/notes")
    async def add_note(
        work_order_id: str,
        note: Note,
        if_match: Annotated[int, Header()],
        principal: CurrentPrincipal,
    ) -> str:
        return note.text

    @router.post("/effects")
    async def record_effect(request: Request, principal: CurrentPrincipal) -> int:
        """A route with an effect: each request it runs for leaves its caller on app.state.effects."""
        request.app.state.effects.append(principal.user_id)
        return len(request.app.state.effects)

    @router.post("/work-orders/{work_order_id}/photos")
    async def upload_photo(work_order_id: str, photo: UploadFile, principal: CurrentPrincipal) -> int:
        return len(await photo.read())

    return router


class Note(BaseModel):
    text: str


def client_for(settings: ServiceSettings) -> TestClient:
    app = create_app(settings, title="auth-test", version="0", routers=[api_router()])
    app.state.effects = []
    return TestClient(app)


@pytest.fixture(scope="module")
def settings() -> ServiceSettings:
    return make_settings()


@pytest.fixture(scope="module")
def client(settings: ServiceSettings) -> Iterator[TestClient]:
    with client_for(settings) as test_client:
        yield test_client


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def advisor_token(settings: ServiceSettings, **overrides: Any) -> str:
    arguments: dict[str, Any] = {"role": "advisor", "branches": ["b1"], "sub": "user-1"} | overrides
    return mint_dev_token(settings, **arguments)


def assert_unauthorized(response: Any, detail_part: str) -> None:
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert detail_part in response.json()["detail"]


def test_no_token_is_401_with_a_bearer_challenge(client: TestClient) -> None:
    response = client.get("/v1/me")

    assert_unauthorized(response, "Authorization: Bearer")
    assert response.headers["www-authenticate"] == "Bearer"


def test_another_scheme_or_an_empty_bearer_is_401(client: TestClient, settings: ServiceSettings) -> None:
    token = advisor_token(settings)
    for header in (f"Basic {token}", "Bearer", "Bearer   ", token):
        assert_unauthorized(client.get("/v1/me", headers={"Authorization": header}), "Authorization: Bearer")
    assert client.get("/v1/me", headers={"Authorization": f"bearer {token}"}).status_code == 200


def test_no_token_is_401_before_any_header_or_body_is_looked_at(
    client: TestClient, settings: ServiceSettings
) -> None:
    malformed = {"If-Match": "not-a-version", "content-type": "application/json"}

    response = client.post("/v1/work-orders/w1/notes", headers=malformed, content=b"{broken")
    assert_unauthorized(response, "Authorization: Bearer")
    upload = client.post("/v1/work-orders/w1/photos", files={"photo": ("p.jpg", b"\xff" * 1024)})
    assert_unauthorized(upload, "Authorization: Bearer")

    # With a token the same requests are judged on their input.
    authorised = malformed | bearer(advisor_token(settings))
    bad_header = client.post("/v1/work-orders/w1/notes", headers=authorised, json={"text": "ok"}).json()
    assert (bad_header["status"], [error["field"] for error in bad_header["errors"]]) == (
        422,
        ["header.if-match"],
    )
    assert (
        client.post(
            "/v1/work-orders/w1/notes", headers=authorised | {"If-Match": "3"}, json={"text": "ok"}
        ).json()
        == "ok"
    )


def test_the_openapi_document_marks_exactly_the_operations_that_demand_a_token(client: TestClient) -> None:
    document = client.get("/openapi.json").json()

    security = {
        path: operation.get("security")
        for path, operations in document["paths"].items()
        for operation in operations.values()
    }
    bearer_only: list[dict[str, list[str]]] = [{"HTTPBearer": []}]
    assert security == {
        "/health": None,
        "/ready": None,
        "/v1/me": bearer_only,
        "/v1/ledger": bearer_only,
        "/v1/branches/{branch_id}/work-orders": bearer_only,
        "/v1/opening-hours": None,
        "/v1/work-orders/{work_order_id}/notes": bearer_only,
        "/v1/effects": bearer_only,
        "/v1/work-orders/{work_order_id}/photos": bearer_only,
    }
    assert document["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    may_be_401 = {
        path
        for path, operations in document["paths"].items()
        for operation in operations.values()
        if "401" in operation["responses"]
    }
    assert may_be_401 == {path for path, scheme in security.items() if scheme == bearer_only}


def test_a_token_signed_with_another_secret_is_401(client: TestClient) -> None:
    forged = mint_dev_token(
        "some-other-secret-also-long-enough-for-hs256",
        role="owner",
        branches=["*"],
        sub="mallory",
        chain="chain-1",
    )

    response = client.get("/v1/me", headers=bearer(forged))

    assert_unauthorized(response, "Signature verification failed")
    assert 'error="invalid_token"' in response.headers["www-authenticate"]


def test_an_expired_token_is_401(client: TestClient, settings: ServiceSettings) -> None:
    expired = advisor_token(settings, ttl=timedelta(minutes=-5))

    assert_unauthorized(client.get("/v1/me", headers=bearer(expired)), "expired")


def test_a_token_for_another_audience_is_401(client: TestClient) -> None:
    elsewhere = mint_dev_token(
        SECRET, role="advisor", branches=["b1"], sub="user-1", chain="chain-1", audience="another-system"
    )

    assert_unauthorized(client.get("/v1/me", headers=bearer(elsewhere)), "audience")


def test_a_token_of_another_chain_is_401(client: TestClient) -> None:
    other_chain = mint_dev_token(SECRET, role="owner", branches=["*"], sub="user-1", chain="chain-2")

    assert_unauthorized(client.get("/v1/me", headers=bearer(other_chain)), "another chain")


def test_a_refused_token_learns_nothing_of_the_expected_issuer_audience_or_chain() -> None:
    expected = {
        "jwt_issuer": "issuer-to-hide",
        "jwt_audience": "audience-to-hide",
        "chain_id": "chain-to-hide",
    }
    claims: dict[str, Any] = {"role": "owner", "branches": ["*"], "sub": "mallory"}
    probes = {
        "audience": mint_dev_token(SECRET, chain="chain-to-hide", issuer="issuer-to-hide", **claims),
        "issuer": mint_dev_token(SECRET, chain="chain-to-hide", audience="audience-to-hide", **claims),
        "chain": mint_dev_token(SECRET, issuer="issuer-to-hide", audience="audience-to-hide", **claims),
    }

    with client_for(make_settings(**expected)) as probed:
        for probe, token in probes.items():
            response = probed.get("/v1/me", headers=bearer(token))

            assert_unauthorized(response, probe)
            said = response.headers["www-authenticate"] + response.text
            assert "to-hide" not in said, (probe, said)


def token_living(seconds: float, *, issued_ago: float = 0) -> str:
    now = time.time()
    return jwt.encode(
        {
            "sub": "user-1",
            "role": "advisor",
            "branches": ["b1"],
            "chain": "chain-1",
            "iss": "pitlane-dev",
            "aud": "pitlane",
            "iat": int(now - issued_ago),
            "exp": int(now - issued_ago + seconds),
        },
        SECRET,
        algorithm="HS256",
    )


def test_a_token_living_longer_than_the_maximum_lifetime_is_401(client: TestClient) -> None:
    twelve_hours = 12 * 3600

    assert client.get("/v1/me", headers=bearer(token_living(twelve_hours))).status_code == 200
    assert_unauthorized(
        client.get("/v1/me", headers=bearer(token_living(twelve_hours + 120))), "lives longer"
    )
    # Issued long ago, still unexpired: its lifetime, not what is left of it, counts.
    old = token_living(twelve_hours + 3600, issued_ago=twelve_hours)
    assert_unauthorized(client.get("/v1/me", headers=bearer(old)), "lives longer")


def test_the_maximum_lifetime_is_a_setting_and_minting_keeps_to_it() -> None:
    short = make_settings(jwt_max_lifetime=timedelta(hours=1))
    with client_for(short) as strict_client:
        assert_unauthorized(strict_client.get("/v1/me", headers=bearer(token_living(7200))), "lives longer")
        assert strict_client.get("/v1/me", headers=bearer(token_living(3000))).status_code == 200

    with pytest.raises(ValueError, match="at most"):
        advisor_token(short, ttl=timedelta(hours=2))
    with pytest.raises(ValueError, match="at most"):
        mint_dev_token(SECRET, role="owner", branches=["*"], sub="u", ttl=timedelta(days=7))


def test_a_valid_token_yields_its_principal(client: TestClient, settings: ServiceSettings) -> None:
    token = mint_dev_token(settings, role="manager", branches=["b2", "b1"], sub="user-9")

    response = client.get("/v1/me", headers=bearer(token))

    assert response.status_code == 200
    assert response.json() == {
        "user_id": "user-9",
        "role": "manager",
        "branches": ["b1", "b2"],
        "chain_id": "chain-1",
    }


def test_a_role_outside_the_allowed_ones_is_403(client: TestClient, settings: ServiceSettings) -> None:
    response = client.get("/v1/ledger", headers=bearer(advisor_token(settings)))

    assert response.status_code == 403
    assert response.headers["content-type"] == "application/problem+json"
    assert (
        response.json()["detail"] == "this needs one of the roles finance, owner; the token's role is advisor"
    )


def test_an_allowed_role_passes(client: TestClient, settings: ServiceSettings) -> None:
    token = mint_dev_token(settings, role="finance", branches=["b1"], sub="user-5")

    assert client.get("/v1/ledger", headers=bearer(token)).json() == "user-5"


def test_a_branch_outside_the_token_is_403_naming_it(client: TestClient, settings: ServiceSettings) -> None:
    token = advisor_token(settings, branches=["b1"])

    allowed = client.get("/v1/branches/b1/work-orders", headers=bearer(token))
    refused = client.get("/v1/branches/b7/work-orders", headers=bearer(token))

    assert allowed.status_code == 200
    assert refused.status_code == 403
    assert "branch b7" in refused.json()["detail"]


def test_a_chain_wide_owner_reaches_every_branch(client: TestClient, settings: ServiceSettings) -> None:
    token = mint_dev_token(settings, role="owner", branches=["*"], sub="boss")

    assert client.get("/v1/branches/any-branch/work-orders", headers=bearer(token)).status_code == 200


def test_only_owner_and_analyst_tokens_may_cover_every_branch(client: TestClient) -> None:
    now = datetime.now(UTC)
    # Signed with the right secret, so only the claim rule can refuse it.
    overreaching = jwt.encode(
        {
            "sub": "user-1",
            "role": "advisor",
            "branches": ["*"],
            "chain": "chain-1",
            "iss": "pitlane-dev",
            "aud": "pitlane",
            "iat": now,
            "exp": now + timedelta(hours=1),
        },
        SECRET,
        algorithm="HS256",
    )

    assert_unauthorized(client.get("/v1/me", headers=bearer(overreaching)), "every branch")
    with pytest.raises(ValueError, match="every branch"):
        mint_dev_token(SECRET, role="advisor", branches=["*"], sub="user-1")


def test_technicians_do_not_see_full_phone_numbers() -> None:
    def principal(role: Role) -> Principal:
        return Principal(user_id="u", role=role, branches=frozenset({"b1"}), chain_id="c")

    assert not principal(Role.TECHNICIAN).sees_full_phone_numbers
    assert all(principal(role).sees_full_phone_numbers for role in Role if role is not Role.TECHNICIAN)


class JwksServer:
    """A JWKS endpoint on 127.0.0.1 over real HTTP, counting how often it is read."""

    def __init__(self, jwks: dict[str, Any]) -> None:
        self.jwks = jwks
        self.requests = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.requests += 1
                body = json.dumps(server.jwks).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
                pass

        self._http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._http.server_address[1]}/.well-known/jwks.json"
        self._thread = threading.Thread(target=self._http.serve_forever, daemon=True)

    def __enter__(self) -> JwksServer:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._http.shutdown()
        self._http.server_close()


def public_jwk(
    private_key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey, kid: str, alg: str
) -> dict[str, Any]:
    public_key = private_key.public_key()
    if isinstance(public_key, rsa.RSAPublicKey):
        jwk = jwt.algorithms.RSAAlgorithm.to_jwk(public_key)
    else:
        jwk = jwt.algorithms.ECAlgorithm.to_jwk(public_key)
    return json.loads(jwk) | {"kid": kid, "alg": alg, "use": "sig"}


def provider_token(private_key: Any, *, kid: str, alg: str = "RS256", **overrides: Any) -> str:
    now = datetime.now(UTC)
    claims = {
        "sub": "oidc-user",
        "role": "manager",
        "branches": ["b1"],
        "chain": "chain-1",
        "iss": "https://id.example.test",
        "aud": "pitlane",
        "iat": now,
        "exp": now + timedelta(minutes=10),
    } | overrides
    return jwt.encode(claims, private_key, algorithm=alg, headers={"kid": kid})


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture
def jwks_server(rsa_key: rsa.RSAPrivateKey, ec_key: ec.EllipticCurvePrivateKey) -> Iterator[JwksServer]:
    jwks = {"keys": [public_jwk(rsa_key, "rsa-1", "RS256"), public_jwk(ec_key, "ec-1", "ES256")]}
    with JwksServer(jwks) as server:
        yield server


@pytest.fixture
def oidc_client(jwks_server: JwksServer) -> Iterator[TestClient]:
    settings = make_settings(oidc_jwks_url=jwks_server.url, jwt_issuer="https://id.example.test")
    with client_for(settings) as test_client:
        yield test_client


def test_tokens_of_the_oidc_provider_verify_against_its_jwks(
    oidc_client: TestClient,
    jwks_server: JwksServer,
    rsa_key: rsa.RSAPrivateKey,
    ec_key: ec.EllipticCurvePrivateKey,
) -> None:
    rs256 = oidc_client.get("/v1/me", headers=bearer(provider_token(rsa_key, kid="rsa-1")))
    es256 = oidc_client.get("/v1/me", headers=bearer(provider_token(ec_key, kid="ec-1", alg="ES256")))

    assert rs256.status_code == 200, rs256.text
    assert rs256.json()["user_id"] == "oidc-user"
    assert es256.status_code == 200, es256.text
    assert jwks_server.requests == 1, "the key set is fetched once and then cached"


def test_with_a_jwks_configured_dev_tokens_and_foreign_keys_are_refused(
    oidc_client: TestClient, rsa_key: rsa.RSAPrivateKey
) -> None:
    dev_token = mint_dev_token(
        SECRET, role="owner", branches=["*"], sub="u", chain="chain-1", issuer="https://id.example.test"
    )
    stranger_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    assert_unauthorized(oidc_client.get("/v1/me", headers=bearer(dev_token)), "cannot be verified")
    assert_unauthorized(
        oidc_client.get("/v1/me", headers=bearer(provider_token(stranger_key, kid="rsa-1"))), "Signature"
    )
    assert_unauthorized(
        oidc_client.get("/v1/me", headers=bearer(provider_token(stranger_key, kid="unknown"))),
        "cannot be verified",
    )
    assert_unauthorized(
        oidc_client.get("/v1/me", headers=bearer(provider_token(rsa_key, kid="rsa-1", aud="x"))), "audience"
    )


def test_an_unreachable_jwks_is_503_not_a_bad_token(rsa_key: rsa.RSAPrivateKey) -> None:
    with JwksServer({"keys": []}) as server:
        unreachable_url = server.url  # the port is closed again once the server has stopped
    settings = make_settings(oidc_jwks_url=unreachable_url, jwt_issuer="https://id.example.test")

    with client_for(settings) as oidc_client:
        response = oidc_client.get("/v1/me", headers=bearer(provider_token(rsa_key, kid="rsa-1")))
        operations = oidc_client.get("/openapi.json").json()["paths"]

    assert response.status_code == 503
    assert response.json()["title"] == "Identity provider unavailable"
    # Documented where a token is verified.
    assert operations["/v1/me"]["get"]["responses"]["503"]["description"] == IDENTITY_PROVIDER_DOWN
    assert "503" not in operations["/v1/opening-hours"]["get"]["responses"]


def test_with_dev_tokens_no_operation_documents_the_identity_provider(client: TestClient) -> None:
    operations = client.get("/openapi.json").json()["paths"]

    assert "503" not in operations["/v1/me"]["get"]["responses"]


def test_pitlane_token_prints_a_token_the_service_accepts() -> None:
    result = CliRunner().invoke(
        cli_app,
        ["token", "--role", "advisor", "--branch", "b1", "--branch", "b2", "--sub", "amy", "--ttl", "2h"],
        env={"PITLANE_JWT_SECRET": SECRET, "PITLANE_CHAIN_ID": "chain-1"},
    )

    assert result.exit_code == 0, result.output
    token = result.stdout.strip()
    principal = Authenticator(make_settings()).verify(token)
    assert principal == Principal(
        user_id="amy", role=Role.ADVISOR, branches=frozenset({"b1", "b2"}), chain_id="chain-1"
    )
    lifetime = jwt.decode(token, options={"verify_signature": False})
    assert lifetime["exp"] - lifetime["iat"] == 2 * 3600


def test_pitlane_token_refuses_an_unknown_role() -> None:
    result = CliRunner().invoke(cli_app, ["token", "--role", "mechanic", "--branch", "b1"])

    assert result.exit_code != 0
    assert "owner, manager, advisor" in result.output


def test_a_verified_token_is_remembered_until_it_expires(settings: ServiceSettings) -> None:
    authenticator = Authenticator(settings)
    token = advisor_token(settings)
    first = authenticator.verify(token)
    # Were the second call to check the signature again, this key change would refuse it.
    authenticator._hmac_secret = "rotated-" + "z" * 40
    assert authenticator.verify(token) is first
    # Past its expiry the remembered token is verified again (here: refused by the rotated key).
    authenticator._verified[token] = (first, time.time() - 1)
    with pytest.raises(InvalidTokenError, match="cannot be verified"):
        authenticator.verify(token)
    assert token not in authenticator._verified


# Tokens that must be refused, each signed with the service's own secret unless the case is the signature:
# a 401 problem, and the route never runs.

TWELVE_HOURS = 12 * 3600
SKEW = int(CLOCK_SKEW.total_seconds())


def claims_now(**overrides: Any) -> dict[str, Any]:
    """An advisor's claims as this service accepts them, issued now (whole seconds), changed by `overrides`
    (a value of None removes the claim)."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "sub": "user-1",
        "role": "advisor",
        "branches": ["b1"],
        "chain": "chain-1",
        "iss": "pitlane-dev",
        "aud": "pitlane",
        "iat": now,
        "exp": now + 3600,
    }
    claims.update(overrides)
    return {key: value for key, value in claims.items() if value is not None}


def signed(claims: dict[str, Any], *, key: str = SECRET, algorithm: str = "HS256") -> str:
    return jwt.encode(claims, key, algorithm=algorithm)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unsigned(claims: dict[str, Any]) -> str:
    """alg=none: a token that claims to need no signature."""
    header = b64url(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    return f"{header}.{b64url(json.dumps(claims).encode())}."


def without(claim: str) -> str:
    return signed(claims_now(**{claim: None}))


def ago(seconds: int) -> int:
    return int(time.time()) - seconds


REFUSED: dict[str, tuple[Callable[[], str], str]] = {
    "signed with another secret": (
        lambda: signed(claims_now(), key="another-secret-also-long-enough-for-hs256-x"),
        "Signature verification failed",
    ),
    "alg none, no signature": (lambda: unsigned(claims_now()), "cannot be verified"),
    "alg none, the original signature kept": (
        lambda: unsigned(claims_now()) + signed(claims_now()).rsplit(".", 1)[1],
        "cannot be verified",
    ),
    "an algorithm the service does not accept (HS512)": (
        lambda: signed(claims_now(), algorithm="HS512"),
        "cannot be verified",
    ),
    "expired one second past the clock skew": (
        lambda: signed(claims_now(iat=ago(3600), exp=ago(SKEW + 1))),
        "expired",
    ),
    "living one second longer than the maximum (with the skew)": (
        lambda: signed(claims_now(exp=int(time.time()) + TWELVE_HOURS + SKEW + 1)),
        "lives longer",
    ),
    "issued later than now, living longer from now than the maximum": (
        lambda: signed(
            claims_now(iat=int(time.time()) + 20, exp=int(time.time()) + TWELVE_HOURS + SKEW + 20)
        ),
        "lives longer",
    ),
    "issued in the future beyond the skew": (
        lambda: signed(claims_now(iat=int(time.time()) + SKEW + 60, exp=int(time.time()) + 7200)),
        "cannot be verified",
    ),
    "not valid before a time to come": (
        lambda: signed(claims_now(nbf=int(time.time()) + SKEW + 60)),
        "cannot be verified",
    ),
    "for another audience": (lambda: signed(claims_now(aud="another-system")), "audience"),
    "of another issuer": (lambda: signed(claims_now(iss="someone-else")), "issuer"),
    "for another chain": (lambda: signed(claims_now(chain="chain-2")), "another chain"),
    **{
        f"without '{claim}'": (functools.partial(without, claim), detail)
        for claim, detail in {
            "sub": "cannot be verified",
            "exp": "cannot be verified",
            "iat": "cannot be verified",
            "iss": "cannot be verified",
            "aud": "cannot be verified",
            "role": "claim 'role'",
            "branches": "claim 'branches'",
            "chain": "claim 'chain'",
        }.items()
    },
    "an empty subject": (lambda: signed(claims_now(sub="")), "claim 'sub'"),
    # Role escalation: a role that does not exist, spelled otherwise, or smuggled in as a list; every branch
    # claimed by a role that may not; branches that are not a list of ids.
    "role superuser": (lambda: signed(claims_now(role="superuser")), "claim 'role'"),
    "role OWNER": (lambda: signed(claims_now(role="OWNER")), "claim 'role'"),
    "role as a list": (lambda: signed(claims_now(role=["owner"])), "claim 'role'"),
    "a manager claiming every branch": (
        lambda: signed(claims_now(role="manager", branches=["*"])),
        "every branch",
    ),
    "branches as one string": (lambda: signed(claims_now(branches="b1")), "claim 'branches'"),
    "every branch as one string": (
        lambda: signed(claims_now(role="owner", branches="*")),
        "claim 'branches'",
    ),
    "an empty branch id": (lambda: signed(claims_now(branches=[""])), "claim 'branches'"),
    "a branch id that is a number": (lambda: signed(claims_now(branches=[7])), "claim 'branches'"),
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_a_token_that_cannot_be_trusted_is_401_and_the_route_never_runs(
    client: TestClient, case: str
) -> None:
    make_token, detail = REFUSED[case]
    effects_before = list(client.app.state.effects)  # type: ignore[attr-defined]

    response = client.post("/v1/effects", headers=bearer(make_token()))

    assert_unauthorized(response, detail)
    assert 'error="invalid_token"' in response.headers["www-authenticate"]
    assert client.app.state.effects == effects_before  # type: ignore[attr-defined]


def test_the_edges_of_the_refused_cases_are_accepted(client: TestClient) -> None:
    """The other side of each time limit, so the limits above are where they are, not just somewhere."""
    accepted = {
        "expired, within the clock skew": claims_now(iat=ago(3600), exp=ago(SKEW - 10)),
        "living exactly the maximum, with the skew": claims_now(exp=int(time.time()) + TWELVE_HOURS + SKEW),
        "issued a little later than now (clock skew)": claims_now(
            iat=int(time.time()) + 20, exp=int(time.time()) + TWELVE_HOURS
        ),
    }
    for case, claims in accepted.items():
        response = client.post("/v1/effects", headers=bearer(signed(claims)))
        assert response.status_code == 200, (case, response.text)
    assert client.app.state.effects[-3:] == ["user-1"] * 3  # type: ignore[attr-defined]


def test_claims_besides_the_role_do_not_raise_it(client: TestClient) -> None:
    token = signed(claims_now(roles=["owner"], scope="owner finance", is_admin=True, admin=True))

    assert client.get("/v1/me", headers=bearer(token)).json()["role"] == "advisor"
    assert client.get("/v1/ledger", headers=bearer(token)).status_code == 403


def test_with_a_jwks_an_hs256_token_keyed_with_the_providers_public_key_is_refused(
    oidc_client: TestClient, rsa_key: rsa.RSAPrivateKey
) -> None:
    """The algorithm confusion attack: the public key, which anyone can fetch, used as an HMAC secret."""
    public_pem = rsa_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    claims = claims_now(iss="https://id.example.test", role="owner", branches=["*"])
    header = b64url(json.dumps({"alg": "HS256", "typ": "JWT", "kid": "rsa-1"}).encode())
    signing_input = f"{header}.{b64url(json.dumps(claims).encode())}"
    signature = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
    forged = f"{signing_input}.{b64url(signature)}"

    response = oidc_client.post("/v1/effects", headers=bearer(forged))

    assert_unauthorized(response, "cannot be verified")
    assert oidc_client.app.state.effects == []  # type: ignore[attr-defined]


# Any change to a valid token's text is refused, unless it leaves the signed bytes and the signature's bytes
# as they were (base64url has spare bits in its last character; the verifier decodes leniently).

TOKEN_CHARACTERS = string.ascii_letters + string.digits + "-_.=+/!~ "


def signature_bytes(token: str) -> bytes | None:
    try:
        return base64.urlsafe_b64decode(token.rsplit(".", 1)[1] + "==")
    except (ValueError, IndexError):
        return None


def same_signed_token(original: str, changed: str) -> bool:
    changed = changed.strip()  # the header's value, as the server reads it
    if changed.count(".") != 2 or changed.rsplit(".", 1)[0] != original.rsplit(".", 1)[0]:
        return False
    return signature_bytes(changed) == signature_bytes(original)


@st.composite
def changed_tokens(draw: st.DrawFn, token: str) -> str:
    position = draw(st.integers(0, len(token) - 1))
    kind = draw(st.sampled_from(["replace", "insert", "delete", "truncate", "swap"]))
    if kind == "replace":
        character = draw(st.sampled_from(TOKEN_CHARACTERS).filter(lambda c: c != token[position]))
        return token[:position] + character + token[position + 1 :]
    if kind == "insert":
        return token[:position] + draw(st.sampled_from(TOKEN_CHARACTERS)) + token[position:]
    if kind == "delete":
        return token[:position] + token[position + 1 :]
    if kind == "truncate":
        return token[:position]
    other = draw(st.integers(0, len(token) - 1).filter(lambda i: token[i] != token[position]))
    first, second = sorted((position, other))
    return token[:first] + token[second] + token[first + 1 : second] + token[first] + token[second + 1 :]


def test_every_change_to_a_valid_tokens_bytes_is_refused(
    client: TestClient, settings: ServiceSettings
) -> None:
    token = mint_dev_token(settings, role="owner", branches=["*"], sub="token-owner")
    assert client.post("/v1/effects", headers=bearer(token)).status_code == 200

    @settings_of_hypothesis(max_examples=300, deadline=None, derandomize=True)
    @given(changed=changed_tokens(token))
    def refused_unless_unchanged(changed: str) -> None:
        assume(changed.strip() and changed != token)
        runs_before = len(client.app.state.effects)  # type: ignore[attr-defined]
        response = client.post("/v1/effects", headers={"Authorization": f"Bearer {changed}"})
        if same_signed_token(token, changed):
            assert response.status_code in (200, 401), response.text
            return
        assert response.status_code == 401, (changed, response.text)
        assert response.headers["content-type"] == "application/problem+json"
        assert len(client.app.state.effects) == runs_before  # type: ignore[attr-defined]

    refused_unless_unchanged()
