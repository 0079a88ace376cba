"""Bodies are bounded before they are read: a huge anonymous upload over a real socket costs the service
nothing but its 401."""

from __future__ import annotations

import asyncio
import select
import socket
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from workorder_harness import BRANCH, Harness

from pitlane_platform.testing.openapi_check import served_on_loopback

GIB = 1 << 30
MIB = 1 << 20
CHUNK = 64 * 1024


def bytes_under(directory: Path) -> int:
    return sum(path.stat().st_size for path in directory.rglob("*") if path.is_file())


def stream_upload(base_url: str, path: str, total: int) -> tuple[int, int]:
    """POSTs a multipart body of `total` bytes, chunked, with no token; stops when the server answers or
    hangs up. Returns the status and how many bytes went out. The body is one chunk sent again and again,
    never `total` bytes in memory."""
    address = urlsplit(base_url)
    boundary = "pitlane-boundary"
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {address.netloc}\r\nTransfer-Encoding: chunked\r\n"
        f"Content-Type: multipart/form-data; boundary={boundary}\r\n\r\n"
    ).encode()
    part_head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.mp4"\r\n'
        "Content-Type: video/mp4\r\n\r\n"
    ).encode()
    chunk = b"\x00" * CHUNK
    sent = 0
    with socket.create_connection((address.hostname, address.port)) as connection:
        connection.sendall(head + b"%x\r\n%s\r\n" % (len(part_head), part_head))
        while sent < total and not select.select([connection], [], [], 0)[0]:
            try:
                connection.sendall(b"%x\r\n%s\r\n" % (CHUNK, chunk))
            except (BrokenPipeError, ConnectionResetError):
                break  # the server answered and hung up; its answer is still to be read
            sent += CHUNK
        connection.settimeout(10)
        answer = connection.recv(4096)
    status_line = answer.split(b"\r\n", 1)[0].decode()
    return int(status_line.split()[1]), sent


async def test_a_1_gib_anonymous_upload_is_refused_and_less_than_1_mib_is_written_anywhere(
    branch: Harness, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Anything the form parser would spool lands here instead of the machine's shared temp directory.
    spool = tmp_path / "spool"
    spool.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(spool))
    blobs = branch.settings.blob_dir
    blobs.mkdir(parents=True, exist_ok=True)
    before = bytes_under(blobs) + bytes_under(spool)

    async with served_on_loopback(branch.service.app) as base_url:
        status, sent = await asyncio.to_thread(stream_upload, base_url, f"/v1/branches/{BRANCH}/media", GIB)

    assert status in (401, 413)
    assert sent < GIB, "the server read the whole body before answering"
    assert bytes_under(blobs) + bytes_under(spool) - before < MIB


async def test_a_body_over_the_route_limit_is_a_413_problem_even_with_a_token(branch: Harness) -> None:
    declared_too_large = await branch.client.post(
        f"/v1/branches/{BRANCH}/work-orders",
        content=b"{}",
        headers={
            **branch.auth("advisor"),
            "content-type": "application/json",
            "content-length": str(branch.settings.max_body_bytes + 1),
        },
    )
    media_too_large = await branch.client.post(
        f"/v1/branches/{BRANCH}/media",
        content=b"x",
        headers={
            **branch.auth("technician"),
            "content-type": "multipart/form-data; boundary=b",
            "content-length": str(branch.settings.max_upload_bytes + 1 * MIB),
        },
    )

    for response in (declared_too_large, media_too_large):
        assert response.status_code == 413, response.text
        assert response.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize("branch_id", ["a.b", "b*", "b>", "b 1"])
async def test_a_branch_id_that_is_no_subject_token_is_a_422_naming_it(
    harness: Harness, branch_id: str
) -> None:
    response = await harness.post(
        "/v1/branches",
        {"branch_id": branch_id, "name": "店", "address": "路", "bays": [{"bay_id": "b", "name": "1号"}]},
        headers=harness.auth("owner", branches=("*",)),
    )

    assert response.status_code == 422, response.text
    assert [error["field"] for error in response.json()["errors"]] == ["body.branch_id"]


async def test_dates_at_the_calendars_edge_and_loose_values_are_422s_naming_the_field(
    branch: Harness,
) -> None:
    far_slot = await branch.book(slot_start="9999-12-31T23:00:00+08:00")
    numeric_slot = await branch.book(slot_start=0)
    far_day = await branch.get(f"/v1/branches/{BRANCH}/slots", params={"on": "9999-12-31"})
    false_mileage = await branch.post(
        f"/v1/branches/{BRANCH}/work-orders",
        {"customer_name": "刘女士", "plate": "沪B54321", "mileage_km": False, "complaint": "异响"},
    )

    for response, field in (
        (far_slot, "body.slot_start"),
        (numeric_slot, "body.slot_start"),
        (far_day, "query.on"),
        (false_mileage, "body.mileage_km"),
    ):
        assert response.status_code == 422, response.text
        assert field in [error["field"] for error in response.json()["errors"]]
