"""Bearer-token auth through a real app: HS256 dev tokens, an OIDC JWKS served over real HTTP, the CLI."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Annotated, Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from fastapi import APIRouter, Depends, Header, UploadFile
from fastapi.testclient import TestClient
from pydantic import BaseModel
from typer.testing import CliRunner

from pitlane_platform.auth import (
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

    @router.post("/work-orders/{work_order_id}/photos")
    async def upload_photo(work_order_id: str, photo: UploadFile, principal: CurrentPrincipal) -> int:
        return len(await photo.read())

    return router


class Note(BaseModel):
    text: str


def client_for(settings: ServiceSettings) -> TestClient:
    return TestClient(create_app(settings, title="auth-test", version="0", routers=[api_router()]))


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
    assert "finance, owner" in response.json()["detail"]


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
