"""Who may do what on NATS: one user per service (an nkey), with permissions derived from what the service
produces and consumes, and the client side of it (TLS verification, the user's seed, an inbox of its own).

A service may publish
- its own events (`<service>.>`) and dead letters of its own consumers (`dlq.>`: the subject names the
  consumer after `dlq.`, one token NATS cannot match by prefix);
- the JetStream API calls the platform makes for it: declare (info, create, update) its own stream, the
  streams it consumes and the platform's dead-letter and replay streams; create, read, delete and pull from
  consumers on the streams it consumes (its own included: the erasure scrub reads it) and on those two;
  ack on them (`$JS.ACK.<stream>.>`); securely delete messages of its own stream and of the two platform
  streams (erasure).
It may subscribe only to its own inbox, `_INBOX_<service>.>`: JetStream answers API calls, publish acks and
pulled messages there. It cannot subscribe to another service's subjects, read a stream it does not consume,
or publish anything on another service's subjects — a forged event would need that producer's seed.

The operator (the `pitlane` CLI: status, dead letters and replays) has every permission.
"""

from __future__ import annotations

import json
import os
import ssl
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nkeys

from pitlane_platform.messaging.streams import (
    DEAD_LETTER_PREFIX,
    DEAD_LETTER_STREAM,
    REPLAY_STREAM,
    stream_name,
)

OPERATOR = "operator"
JS_API = "$JS.API"


def inbox_prefix(user: str) -> str:
    """Each user's replies arrive under its own prefix, so its subscribe permission covers no one else's."""
    return f"_INBOX_{user}"


def service_permissions(service: str, consumes: Iterable[str] = ()) -> dict[str, Any]:
    """The nats-server `permissions` block of a service's user (module docstring)."""
    own = stream_name(service)
    platform = [DEAD_LETTER_STREAM, REPLAY_STREAM]
    consumed = sorted({own, *(stream_name(source) for source in consumes)})
    declared = sorted({*consumed, *platform})
    publish = [f"{service}.>", f"{DEAD_LETTER_PREFIX}.>", f"{JS_API}.INFO"]
    for stream in declared:
        publish += [f"{JS_API}.STREAM.{action}.{stream}" for action in ("INFO", "CREATE", "UPDATE")]
    for stream in sorted({*consumed, *platform}):
        publish += [
            f"{JS_API}.CONSUMER.CREATE.{stream}.>",
            f"{JS_API}.CONSUMER.DURABLE.CREATE.{stream}.*",
            f"{JS_API}.CONSUMER.INFO.{stream}.*",
            f"{JS_API}.CONSUMER.DELETE.{stream}.*",
            f"{JS_API}.CONSUMER.MSG.NEXT.{stream}.*",
            f"{JS_API}.CONSUMER.LIST.{stream}",
            f"{JS_API}.CONSUMER.NAMES.{stream}",
            f"$JS.ACK.{stream}.>",
        ]
    publish += [f"{JS_API}.STREAM.MSG.DELETE.{stream}" for stream in (own, *platform)]
    return {"publish": {"allow": publish}, "subscribe": {"allow": [f"{inbox_prefix(service)}.>"]}}


OPERATOR_PERMISSIONS: dict[str, Any] = {"publish": {"allow": [">"]}, "subscribe": {"allow": [">"]}}


@dataclass(frozen=True)
class NatsUser:
    name: str
    public_key: str  # the nkey's public half (U…); the server never sees the seed
    permissions: dict[str, Any]

    def config(self) -> dict[str, Any]:
        return {"nkey": self.public_key, "permissions": self.permissions}


def ensure_nkey_seed(path: Path) -> str:
    """The user nkey whose seed is in `path`, made (0600) when the file is absent; returns its public key."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        seed = nkeys.encode_seed(os.urandom(32), nkeys.PREFIX_BYTE_USER)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "wb") as file:
            file.write(seed)
    return public_key_of_seed(path)


def public_key_of_seed(path: Path) -> str:
    key_pair = nkeys.from_seed(bytearray(path.read_bytes().strip()))
    try:
        return bytes(key_pair.public_key).decode()
    finally:
        key_pair.wipe()


@dataclass(frozen=True)
class NatsServerTls:
    """The server side: its certificate and key; `ca_file` with `verify_clients` also demands client
    certificates signed by it (mutual TLS)."""

    cert_file: Path
    key_file: Path
    ca_file: Path | None = None
    verify_clients: bool = False

    def config(self) -> dict[str, Any]:
        block: dict[str, Any] = {"cert_file": str(self.cert_file), "key_file": str(self.key_file)}
        if self.ca_file is not None:
            block["ca_file"] = str(self.ca_file)
        if self.verify_clients:
            block["verify"] = True
        return block


def server_config_text(
    *, tls: NatsServerTls | None, users: Sequence[NatsUser] | None, max_payload: int | None
) -> str:
    """A nats-server configuration file: JSON is valid in its format, and quotes every subject for us."""
    config: dict[str, Any] = {}
    if max_payload is not None:
        config["max_payload"] = max_payload
    if tls is not None:
        config["tls"] = tls.config()
    if users is not None:
        # An empty list would let anyone in: with users configured, unauthenticated clients are refused.
        if not users:
            raise ValueError("an authorization block needs at least one user")
        config["authorization"] = {"users": [user.config() for user in users]}
    return json.dumps(config, indent=2) + "\n"


@dataclass(frozen=True)
class NatsClientAccess:
    """How a client proves the server is ours and who it is: the CA to verify the server's certificate
    against (none: the system's trust store, where the URL is `tls://`), an optional client certificate for
    servers that demand mutual TLS, and its user (an nkey seed file, or a `.creds` file for servers run in
    decentralised JWT mode)."""

    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    nkey_seed_file: Path | None = None
    credentials_file: Path | None = None
    inbox_prefix: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def ssl_context(self) -> ssl.SSLContext | None:
        if self.ca_file is None and self.cert_file is None:
            return None
        context = ssl.create_default_context(cafile=str(self.ca_file) if self.ca_file else None)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        if self.cert_file is not None:
            context.load_cert_chain(str(self.cert_file), str(self.key_file) if self.key_file else None)
        return context

    def connect_options(self) -> dict[str, Any]:
        """Keyword arguments for `nats.connect`."""
        options: dict[str, Any] = dict(self.extra)
        if (context := self.ssl_context()) is not None:
            options["tls"] = context
        if self.nkey_seed_file is not None:
            options["nkeys_seed"] = str(self.nkey_seed_file)
        if self.credentials_file is not None:
            options["user_credentials"] = str(self.credentials_file)
        if self.inbox_prefix is not None:
            options["inbox_prefix"] = self.inbox_prefix
        return options
