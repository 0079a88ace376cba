"""The gateway's Caddyfile as `pitlane up` writes it: which paths a service may claim, and the one place the
security headers are set (the served behaviour is tests/e2e/test_gateway_walkthrough.py's)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pitlane_platform.devcluster.gateway import Gateway, GatewayRoute, caddyfile


def config(routes: list[GatewayRoute]) -> str:
    return caddyfile(storage=Path("/s"), log_file=Path("/l"), host="localhost", port=18443, routes=routes)


def test_a_service_may_claim_only_the_reserved_paths() -> None:
    assert GatewayRoute.reserved("/c/", 4100, service="workorder").strip is False
    with pytest.raises(
        ValueError, match=r"claims the gateway path '/admin/'.*only /c/, /n/, /r/, /dashboard"
    ):
        GatewayRoute.reserved("/admin/", 4100, service="workorder")


def test_two_services_cannot_claim_the_same_path() -> None:
    routes = [
        GatewayRoute.reserved("/c/", 4100, service="a"),
        GatewayRoute.reserved("/c/", 4200, service="b"),
    ]
    with pytest.raises(ValueError, match="two services claim the same gateway path"):
        config(routes)


def test_api_routes_strip_their_prefix_and_the_dashboard_waits_for_analytics() -> None:
    text = config(
        [GatewayRoute.api("workorder", 4100), GatewayRoute.reserved("/c/", 4100, service="workorder")]
    )
    assert "handle_path /api/workorder/* {\n\t\treverse_proxy 127.0.0.1:4100" in text
    assert "handle /c/* {\n\t\treverse_proxy 127.0.0.1:4100" in text
    assert 'respond "the dashboard comes with analytics" 404' in text
    claimed = config([GatewayRoute.reserved("/dashboard", 4300, service="analytics")])
    assert "handle /dashboard* {\n\t\treverse_proxy 127.0.0.1:4300" in claimed and "comes with" not in claimed
    # The headers are one snippet, imported by the site and by its error answers.
    assert text.count("import security_headers") == 2 and text.count("Strict-Transport-Security") == 1
    assert "admin off" in text and "skip_install_trust" in text and "tls internal" in text


def test_the_gateway_never_takes_a_port_another_server_may_own(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="gateway port 5432"):
        Gateway(tmp_path, 5432)
