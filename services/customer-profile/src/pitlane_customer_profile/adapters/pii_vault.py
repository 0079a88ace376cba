"""Crypto-shredding (ADR 0006): personal data in stored customer events is encrypted with a data key of
that customer; erasing the customer deletes the key, and the stored ciphertext can never be read again.

Data keys are AES-256-GCM keys, kept wrapped (encrypted) with the service's master key, so a copy of the
database alone reveals nothing. Each encrypted value is bound to its customer id (associated data), so a
ciphertext copied into another customer's stream does not decrypt there.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterable
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from pitlane_customer_profile.adapters.tables import customer_data_keys

TOKEN_PREFIX = "pii:v1:"
NONCE_BYTES = 12


class ShreddedError(Exception):
    """The customer's data key is gone: the value was erased."""


def is_token(value: Any) -> bool:
    return isinstance(value, str) and value.startswith(TOKEN_PREFIX)


class DataKey:
    """One customer's data key, unwrapped for the length of a unit of work."""

    def __init__(self, customer_id: str, key: bytes) -> None:
        self.customer_id = customer_id
        self._aead = AESGCM(key)

    def seal(self, value: Any) -> str:
        """Any JSON value → `pii:v1:<base64(nonce ‖ ciphertext)>`."""
        nonce = os.urandom(NONCE_BYTES)
        plaintext = json.dumps(value, ensure_ascii=False).encode()
        sealed = self._aead.encrypt(nonce, plaintext, self.customer_id.encode())
        return TOKEN_PREFIX + base64.b64encode(nonce + sealed).decode()

    def open(self, token: str) -> Any:
        raw = base64.b64decode(token.removeprefix(TOKEN_PREFIX))
        try:
            plaintext = self._aead.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], self.customer_id.encode())
        except InvalidTag:
            raise ShreddedError(
                f"a value of customer {self.customer_id} does not open with its key"
            ) from None
        return json.loads(plaintext)


class PiiVault:
    def __init__(self, master_key: bytes) -> None:
        if len(master_key) != 32:
            raise ValueError("the PII master key must be 32 bytes (base64 in settings)")
        self._master = AESGCM(master_key)

    def _wrap(self, customer_id: str, key: bytes) -> bytes:
        nonce = os.urandom(NONCE_BYTES)
        return nonce + self._master.encrypt(nonce, key, customer_id.encode())

    def _unwrap(self, customer_id: str, wrapped: bytes) -> bytes:
        return self._master.decrypt(wrapped[:NONCE_BYTES], wrapped[NONCE_BYTES:], customer_id.encode())

    async def keys_for(
        self, session: AsyncSession, customer_ids: Iterable[str], *, create_missing: bool = False
    ) -> dict[str, DataKey]:
        """The data keys of these customers; with `create_missing`, new keys for those without one (a new
        customer). A customer missing from the result was erased (or never existed)."""
        wanted = set(customer_ids)
        if not wanted:
            return {}
        rows = await session.execute(
            select(customer_data_keys.c.customer_id, customer_data_keys.c.wrapped_key).where(
                customer_data_keys.c.customer_id.in_(wanted)
            )
        )
        keys = {cid: DataKey(cid, self._unwrap(cid, wrapped)) for cid, wrapped in rows.all()}
        missing = wanted - keys.keys()
        if create_missing and missing:
            fresh = {cid: AESGCM.generate_key(bit_length=256) for cid in sorted(missing)}
            await session.execute(
                pg_insert(customer_data_keys).on_conflict_do_nothing(),
                [{"customer_id": cid, "wrapped_key": self._wrap(cid, key)} for cid, key in fresh.items()],
            )
            keys.update({cid: DataKey(cid, key) for cid, key in fresh.items()})
        return keys

    async def shred(self, session: AsyncSession, customer_ids: Iterable[str]) -> None:
        await session.execute(
            delete(customer_data_keys).where(customer_data_keys.c.customer_id.in_(set(customer_ids)))
        )
