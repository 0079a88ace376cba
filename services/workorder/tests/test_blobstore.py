"""The blob store, content-addressed by sha256: on the filesystem and on a real S3-compatible HTTP server
(moto's threaded server on 127.0.0.1)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from moto.server import ThreadedMotoServer

from pitlane_workorder.adapters.blobstore import BlobStore, FilesystemBlobStore, S3BlobStore
from pitlane_workorder.bootstrap import WorkorderSettings, blob_store_from

VIDEO = b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 40


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def s3_settings(endpoint: str, bucket: str) -> WorkorderSettings:
    return WorkorderSettings(
        database_url="postgresql://unused/db",
        nats_url="nats://unused:4222",
        blob_store="s3",
        s3_bucket=bucket,
        s3_endpoint_url=endpoint,
        s3_access_key_id="testing",
        s3_secret_access_key="testing",  # type: ignore[arg-type]
        s3_prefix="media/",
    )


@pytest.fixture(params=["filesystem", "s3"])
def store(request, tmp_path: Path) -> BlobStore:
    if request.param == "filesystem":
        return FilesystemBlobStore(tmp_path / "blobs")
    endpoint = request.getfixturevalue("s3_endpoint")
    settings = s3_settings(endpoint, f"bucket-{tmp_path.name.lower().replace('_', '-')[:40]}")
    boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    ).create_bucket(Bucket=settings.s3_bucket)
    chosen = blob_store_from(settings)
    assert isinstance(chosen, S3BlobStore)
    return chosen


async def test_bytes_come_back_by_their_sha256_and_storing_twice_is_harmless(store: BlobStore):
    content_hash = await store.put(VIDEO, "video/mp4")
    assert content_hash == "sha256:" + hashlib.sha256(VIDEO).hexdigest()
    assert await store.put(VIDEO, "video/mp4") == content_hash
    assert await store.get(content_hash) == VIDEO
    assert await store.get("sha256:" + "0" * 64) is None


def test_s3_needs_a_bucket():
    with pytest.raises(ValueError, match="s3_bucket"):
        WorkorderSettings(
            database_url="postgresql://unused/db", nats_url="nats://unused:4222", blob_store="s3"
        )


async def test_s3_objects_are_keyed_by_hash_under_the_prefix(s3_endpoint: str):
    settings = s3_settings(s3_endpoint, "keyed")
    client = boto3.client(
        "s3",
        endpoint_url=s3_endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    client.create_bucket(Bucket="keyed")
    content_hash = await blob_store_from(settings).put(b"photo", "image/png")
    stored = client.get_object(Bucket="keyed", Key="media/sha256/" + content_hash.removeprefix("sha256:"))
    assert stored["Body"].read() == b"photo" and stored["ContentType"] == "image/png"
