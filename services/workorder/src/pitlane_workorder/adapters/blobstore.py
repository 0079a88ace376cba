"""Photos and videos, stored by the sha256 of their bytes: the same file is stored once, a stored file can
never change under its name, and events refer to files by hash (`sha256:<hex>`).

The local filesystem is the default; S3-compatible storage (AWS S3, MinIO, OSS/COS through their S3 APIs)
is chosen by configuration. Both are blocking libraries, so their calls run on worker threads.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import tempfile
from pathlib import Path
from typing import Any, Protocol

HASH_PREFIX = "sha256:"


def content_hash(data: bytes) -> str:
    return HASH_PREFIX + hashlib.sha256(data).hexdigest()


def _hex_of(hash_: str) -> str:
    if not hash_.startswith(HASH_PREFIX) or len(hash_) != len(HASH_PREFIX) + 64:
        raise ValueError(f"not a content hash: {hash_!r}")
    return hash_.removeprefix(HASH_PREFIX)


class BlobStore(Protocol):
    async def put(self, data: bytes, media_type: str) -> str:
        """Store the bytes (idempotently) and return their content hash."""
        ...

    async def get(self, hash_: str) -> bytes | None:
        """The stored bytes, or None when nothing is stored under the hash."""
        ...


class FilesystemBlobStore:
    """Files under `root/ab/cd/<hex>`; written to a temporary file and renamed, so a reader never sees half
    a file and two writers of the same content cannot corrupt it."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, hex_digest: str) -> Path:
        return self.root / hex_digest[:2] / hex_digest[2:4] / hex_digest

    async def put(self, data: bytes, media_type: str) -> str:
        hash_ = content_hash(data)
        await asyncio.to_thread(self._write, self._path(_hex_of(hash_)), data)
        return hash_

    @staticmethod
    def _write(path: Path, data: bytes) -> None:
        if path.exists():
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, delete=False) as scratch:
            scratch.write(data)
        os.replace(scratch.name, path)

    async def get(self, hash_: str) -> bytes | None:
        path = self._path(_hex_of(hash_))
        try:
            return await asyncio.to_thread(path.read_bytes)
        except FileNotFoundError:
            return None


class S3BlobStore:
    """Objects `<prefix>sha256/<hex>` in one bucket of any S3-compatible service."""

    def __init__(self, client: Any, bucket: str, prefix: str = "") -> None:
        self.client = client  # a boto3 S3 client
        self.bucket = bucket
        self.prefix = prefix

    def _key(self, hash_: str) -> str:
        return f"{self.prefix}sha256/{_hex_of(hash_)}"

    async def put(self, data: bytes, media_type: str) -> str:
        hash_ = content_hash(data)
        await asyncio.to_thread(
            self.client.put_object,
            Bucket=self.bucket,
            Key=self._key(hash_),
            Body=data,
            ContentType=media_type,
            ChecksumSHA256=_base64_sha256(data),  # the service verifies the upload arrived intact
        )
        return hash_

    async def get(self, hash_: str) -> bytes | None:
        try:
            response = await asyncio.to_thread(
                self.client.get_object, Bucket=self.bucket, Key=self._key(hash_)
            )
        except self.client.exceptions.NoSuchKey:
            return None
        body: bytes = await asyncio.to_thread(response["Body"].read)
        return body


def _base64_sha256(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode()
