"""NATS as `pitlane up` runs it: TLS on the client port with a certificate of the cluster's own CA, and one
nkey user per installed service with the permissions of security/nats_access.py, plus the operator user of
the `pitlane` CLI. Everything is made on first start under `<data>/nats/security/` and kept:

    ca.crt, ca.key           the cluster CA (clients verify the server against ca.crt)
    nats-server.crt/.key     the server's certificate, for 127.0.0.1 and localhost
    users/<user>.nk          each user's nkey seed (0600); the server's configuration holds public keys only
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pitlane_platform.security.nats_access import (
    OPERATOR,
    OPERATOR_PERMISSIONS,
    NatsClientAccess,
    NatsServerTls,
    NatsUser,
    ensure_nkey_seed,
    inbox_prefix,
    service_permissions,
)
from pitlane_platform.security.pki import ClusterCa
from pitlane_platform.services import ServiceSpec

SERVER_CERTIFICATE = "nats-server"


@dataclass(frozen=True)
class SecuredNats:
    directory: Path
    tls: NatsServerTls
    users: list[NatsUser]

    @property
    def ca_file(self) -> Path:
        assert self.tls.ca_file is not None
        return self.tls.ca_file

    def seed_file(self, user: str) -> Path:
        return self.directory / "users" / f"{user}.nk"

    def client_access(self, user: str) -> NatsClientAccess:
        return NatsClientAccess(
            ca_file=self.ca_file, nkey_seed_file=self.seed_file(user), inbox_prefix=inbox_prefix(user)
        )

    def service_env(self, spec: ServiceSpec) -> dict[str, str]:
        """The settings a service's process gets to connect as its own user (ServiceSettings' fields)."""
        return {
            f"{spec.env_prefix}NATS_TLS_CA_FILE": str(self.ca_file),
            f"{spec.env_prefix}NATS_NKEY_SEED_FILE": str(self.seed_file(spec.name)),
        }


def secure_nats(
    directory: Path, specs: Sequence[ServiceSpec], *, server_names: tuple[str, ...] = ("localhost",)
) -> SecuredNats:
    """The CA, the server's certificate (for 127.0.0.1 and `server_names`: docker-compose adds its service
    name) and a user per service (and the operator), made where missing."""
    directory = Path(directory).resolve()
    ca = ClusterCa(directory)
    issued = ca.server_certificate(SERVER_CERTIFICATE, dns_names=server_names)
    users = [
        NatsUser(OPERATOR, ensure_nkey_seed(directory / "users" / f"{OPERATOR}.nk"), OPERATOR_PERMISSIONS)
    ]
    for spec in specs:
        if spec.name == OPERATOR:
            raise ValueError(f"a service cannot be named {OPERATOR!r}: that is the CLI's NATS user")
        public_key = ensure_nkey_seed(directory / "users" / f"{spec.name}.nk")
        users.append(NatsUser(spec.name, public_key, service_permissions(spec.name, spec.consumes)))
    tls = NatsServerTls(cert_file=issued.cert_file, key_file=issued.key_file, ca_file=ca.cert_file)
    return SecuredNats(directory, tls, users)
