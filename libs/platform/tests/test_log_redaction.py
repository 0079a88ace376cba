"""No link token reaches a log line: not through uvicorn's access log (off, as `pitlane up` asks), not
through the lines the platform and httpx write with a request's path — for every path the services put a
link's token in, with a token minted as the services mint them."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from token_pages_app import MARKER, TOKEN_ROUTES, create_token_pages_app

from pitlane_platform.devcluster import uvicorn_command
from pitlane_platform.embedded import LOOPBACK, free_port
from pitlane_platform.logging import redact_url
from pitlane_platform.security.links import CustomerLink, sign_link
from pitlane_platform.services import ServiceSpec

TOKEN = sign_link(
    "a-link-secret-of-32-bytes-or-more!", CustomerLink("wo-1", "branch-1", datetime(2030, 1, 1, tzinfo=UTC))
)
TOKEN_PATHS = [route.format(token=TOKEN, add_on_id="addon-1") for route in TOKEN_ROUTES]
SPEC = ServiceSpec(
    name="token-pages",
    env_prefix="TOKEN_PAGES_",
    asgi_factory="token_pages_app:create_token_pages_app",
)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """The app under uvicorn, started as `pitlane up` starts a service; its stderr in a file."""
    port = free_port()
    log = tmp_path / "stderr.log"
    with log.open("wb") as stderr:
        process = subprocess.Popen(
            uvicorn_command(SPEC, port),
            cwd=Path(__file__).parent,
            stdout=stderr,
            stderr=stderr,
            env={"PATH": "/usr/bin:/bin", "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(Path(__file__).parent)},
        )
        try:
            yield f"http://{LOOPBACK}:{port}", log
        finally:
            process.terminate()
            process.wait(timeout=30)


def _wait_for_listener(base_url: str) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            httpx.get(f"{base_url}/health", timeout=5)
            return
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def test_a_service_started_as_pitlane_up_starts_it_writes_no_access_log_and_no_token(
    served: tuple[str, Path],
) -> None:
    base_url, log = served
    _wait_for_listener(base_url)
    for path in TOKEN_PATHS:
        assert httpx.get(f"{base_url}{path}?lang=en", timeout=10).status_code == 500
    httpx.get(f"{base_url}/marker", timeout=10)
    deadline = time.monotonic() + 30
    while MARKER not in log.read_text():  # the positive signal: every earlier line is written by now
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.1)

    lines = log.read_text().splitlines()
    assert sum("unhandled error in GET" in line for line in lines) == len(TOKEN_PATHS)
    assert not [line for line in lines if "uvicorn.access" in line]
    assert not [line for line in lines if TOKEN in line or TOKEN.split(".")[1] in line]


@pytest.mark.parametrize("path", TOKEN_PATHS)
def test_the_lines_a_request_to_a_token_page_leads_to_carry_no_token(
    path: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with TestClient(create_token_pages_app(), raise_server_exceptions=False) as client:
        assert client.get(f"{path}?lang=en").status_code == 500

    lines = capsys.readouterr().err.splitlines()
    written = [line for line in lines if "unhandled error in GET" in line or '"logger": "httpx"' in line]
    assert len(written) == 2, lines  # the platform's line of the failure, and httpx's of the request
    assert not [line for line in lines if TOKEN in line or TOKEN.split(".")[1] in line]
    messages = [json.loads(line)["message"] for line in written]
    assert all("/…" in message for message in messages), messages
    assert any(message.endswith('?… "HTTP/1.1 500 Internal Server Error"') for message in messages), messages


def test_redaction_keeps_what_is_no_token() -> None:
    assert (
        redact_url("GET /v1/work-orders/wo-1/lines?phone=13800000000") == "GET /v1/work-orders/wo-1/lines?…"
    )
    assert redact_url("GET /openapi.json") == "GET /openapi.json"
    assert (
        redact_url(f'GET /c/{TOKEN}/add-ons/a-1/approve "HTTP/1.1 200"')
        == 'GET /c/…/add-ons/a-1/approve "HTTP/1.1 200"'
    )
