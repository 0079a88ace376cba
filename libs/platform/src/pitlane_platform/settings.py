"""Settings of a service: environment variables under the service's own prefix (e.g. `WORKORDER_NATS_URL`).

Secrets have development defaults so `pitlane up` works out of the box; outside `env=dev` those defaults
are refused at start-up, so a production deployment cannot run with a secret that is in the source code.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AnyHttpUrl, Field, FilePath, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from pitlane_platform.clock import Clock, clock_from_settings
from pitlane_platform.security.nats_access import NatsClientAccess, inbox_prefix
from pitlane_platform.security.rates import checked_rate

DEV_JWT_SECRET = "pitlane-dev-jwt-secret-not-for-production"
DEV_LINK_SECRET = "pitlane-dev-link-secret-not-for-production"


class ServiceSettings(BaseSettings):
    """Base of every service's settings. A service subclasses it and sets its `env_prefix`."""

    # An empty variable is an unset one: docker-compose.yml and the Kubernetes ConfigMaps list every setting
    # of a service, those left to their default empty (tests/deploy checks that none is missing).
    model_config = SettingsConfigDict(
        env_prefix="PITLANE_", extra="ignore", frozen=True, env_ignore_empty=True
    )

    service_name: str = "pitlane"
    env: Literal["dev", "test", "prod"] = "dev"
    chain_id: str = "default"
    chain_timezone: str = "Asia/Shanghai"

    database_url: str = Field(
        description="postgresql://… of the service's database; over TCP add `?sslmode=verify-full&"
        "sslrootcert=/path/ca.crt` to demand TLS and check the server's certificate and name (docs/running.md)"
    )
    nats_url: str = Field(description="nats://… or tls://…; several servers separated by commas")
    nats_tls_ca_file: FilePath | None = Field(
        default=None,
        description="the CA the NATS server's certificate is verified against (TLS with verification); "
        "unset with a tls:// URL: the system's trust store",
    )
    nats_tls_cert_file: FilePath | None = Field(
        default=None, description="a client certificate, for servers that demand mutual TLS"
    )
    nats_tls_key_file: FilePath | None = Field(default=None, description="the client certificate's key")
    nats_nkey_seed_file: FilePath | None = Field(
        default=None, description="the service's NATS user: a file holding its nkey seed (from a secret)"
    )
    nats_credentials_file: FilePath | None = Field(
        default=None, description="the service's NATS user as a .creds file (servers in JWT mode)"
    )
    apply_migrations_at_start: bool | None = Field(
        default=None, description="default: on in dev and test, off in prod (migrations run as a k8s Job)"
    )

    jwt_secret: SecretStr = SecretStr(DEV_JWT_SECRET)
    jwt_issuer: str = "pitlane-dev"
    jwt_audience: str = "pitlane"
    oidc_jwks_url: str | None = None
    jwt_max_lifetime: timedelta = Field(
        default=timedelta(hours=12),
        gt=timedelta(0),
        description="a token living longer than this (exp - iat) is refused: a staff token leaked from a "
        "browser or a log is then good for one shift at most, whatever its issuer allowed",
    )
    link_secret: SecretStr = SecretStr(DEV_LINK_SECRET)
    # Where customers and browsers reach the system (the gateway's URL): every link a service sends is built
    # on it, never on the Host header of the request that asked for it (which a client chooses).
    public_base_url: AnyHttpUrl = AnyHttpUrl("https://localhost:8443")

    http_tls_cert_file: FilePath | None = Field(
        default=None,
        description="serve HTTPS from the service itself (`python -m pitlane_platform.serve`), for "
        "deployments without a gateway: the certificate (chain) file",
    )
    http_tls_key_file: FilePath | None = Field(default=None, description="the HTTPS certificate's key")

    max_body_bytes: int = Field(
        default=1024 * 1024,
        gt=0,
        description="the largest request body a route accepts (an event fits the broker's 1 MiB); "
        "upload routes are given their own limit by the service (create_app's max_body_bytes)",
    )

    otlp_endpoint: str | None = None
    otel_sample_ratio: float = Field(
        default=1.0, ge=0.0, le=1.0, description="share of new traces recorded when an exporter is set"
    )
    log_level: str = "INFO"

    run_background: bool = Field(
        default=True,
        description="this process runs the relay and the consumers; API-only processes (several API "
        "workers beside one worker process) set it false",
    )
    stream_replicas: int = Field(
        default=1,
        ge=1,
        le=5,
        description="JetStream replicas of the streams the service declares (its own, those it consumes, "
        "dead letters and replays): 3 on a three-node NATS cluster",
    )
    relay_poll_interval_s: float = 1.0
    relay_batch_size: int = 256
    relay_max_lag_s: float = Field(
        default=60.0, description="readiness fails when the oldest unpublished event is older than this"
    )

    timer_poll_interval_s: float = Field(
        default=1.0,
        gt=0,
        description="how often the durable timers look for due ones besides being woken by a new timer "
        "(an injected clock moves without telling them)",
    )
    timer_concurrency: int = Field(
        default=4,
        ge=1,
        le=64,
        description="due timers one process fires at once (their handlers wait on providers)",
    )

    public_rate_limit: str = Field(
        default="60/minute;600/hour",
        description="requests per client address and route to every route that demands no token (public "
        "booking, the customer's pages); `limits` notation, several windows separated by ';'",
    )

    clock_fixed_at: datetime | None = None
    clock_offset: timedelta | None = None
    clock_offset_file: Path | None = Field(
        default=None,
        description="a file holding the clock's offset from real time in microseconds, read at every reading "
        "(`pitlane demo` steers the services through past years with it); no file: no offset",
    )

    @field_validator("chain_timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown IANA time zone {value!r} (e.g. Asia/Shanghai)") from None
        return value

    @field_validator("public_rate_limit")
    @classmethod
    def _a_rate(cls, value: str) -> str:
        return checked_rate(value)

    @model_validator(mode="after")
    def _pairs_come_together(self) -> ServiceSettings:
        for cert, key in (
            ("nats_tls_cert_file", "nats_tls_key_file"),
            ("http_tls_cert_file", "http_tls_key_file"),
        ):
            if (getattr(self, cert) is None) != (getattr(self, key) is None):
                raise ValueError(f"{cert} and {key} go together: set both or neither")
        if self.nats_nkey_seed_file is not None and self.nats_credentials_file is not None:
            raise ValueError("nats_nkey_seed_file and nats_credentials_file: set one NATS user, not both")
        return self

    @model_validator(mode="after")
    def _no_default_secrets_outside_dev(self) -> ServiceSettings:
        if self.env == "dev":
            return self
        if self.oidc_jwks_url is None and self.jwt_secret.get_secret_value() == DEV_JWT_SECRET:
            raise ValueError("jwt_secret is the development default; set a secret or oidc_jwks_url")
        if self.link_secret.get_secret_value() == DEV_LINK_SECRET:
            raise ValueError("link_secret is the development default; set a secret of your own")
        return self

    def nats_access(self) -> NatsClientAccess:
        return NatsClientAccess(
            ca_file=self.nats_tls_ca_file,
            cert_file=self.nats_tls_cert_file,
            key_file=self.nats_tls_key_file,
            nkey_seed_file=self.nats_nkey_seed_file,
            credentials_file=self.nats_credentials_file,
            inbox_prefix=inbox_prefix(self.service_name),
        )

    @property
    def migrate_at_start(self) -> bool:
        if self.apply_migrations_at_start is not None:
            return self.apply_migrations_at_start
        return self.env != "prod"

    @property
    def timezone(self) -> ZoneInfo:
        return ZoneInfo(self.chain_timezone)

    def clock(self) -> Clock:
        return clock_from_settings(self.clock_fixed_at, self.clock_offset, self.clock_offset_file)
