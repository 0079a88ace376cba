"""Serve one installed service with uvicorn, over HTTPS when its settings name a certificate — for
deployments without a gateway in front (the gateway or the Ingress terminates TLS otherwise):

    WORKORDER_HTTP_TLS_CERT_FILE=/run/secrets/tls.crt WORKORDER_HTTP_TLS_KEY_FILE=/run/secrets/tls.key \\
        python -m pitlane_platform.serve workorder --host 0.0.0.0 --port 8443

The settings are the service's own (`<PREFIX>HTTP_TLS_CERT_FILE`, `<PREFIX>HTTP_TLS_KEY_FILE`), checked as
the service checks them (a missing file, or a certificate without its key, is refused naming the field).
Like `pitlane up`, uvicorn runs without its access log (a URL can hold a looked-up phone or a link token).
"""

from __future__ import annotations

import argparse
import ssl
from typing import Any

import uvicorn

from pitlane_platform.services import ServiceSpec, installed_services
from pitlane_platform.settings import ServiceSettings


def tls_options(settings: ServiceSettings) -> dict[str, Any]:
    """uvicorn's TLS options from the settings; none when no certificate is configured (plain HTTP)."""
    if settings.http_tls_cert_file is None:
        return {}
    return {
        "ssl_certfile": str(settings.http_tls_cert_file),
        "ssl_keyfile": str(settings.http_tls_key_file),
        "ssl_version": ssl.PROTOCOL_TLS_SERVER,
    }


def spec_named(name: str) -> ServiceSpec:
    specs = {spec.name: spec for spec in installed_services()}
    if name not in specs:
        raise SystemExit(f"no installed service {name!r}; installed: {', '.join(sorted(specs)) or 'none'}")
    return specs[name]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m pitlane_platform.serve", description=__doc__)
    parser.add_argument("service", help="an installed service's name, e.g. workorder")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--workers", type=int, default=1)
    arguments = parser.parse_args(argv)
    spec = spec_named(arguments.service)
    settings = ServiceSettings(_env_prefix=spec.env_prefix)  # type: ignore[call-arg]
    uvicorn.run(
        spec.asgi_factory,
        factory=True,
        host=arguments.host,
        port=arguments.port,
        workers=arguments.workers,
        loop="uvloop",
        http="httptools",
        access_log=False,
        **tls_options(settings),
    )


if __name__ == "__main__":
    main()
