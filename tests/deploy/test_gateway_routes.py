"""The gateway's routes in compose (Caddyfile) and Kubernetes (HTTPRoutes) are those of `pitlane up`: every
installed service's /api/<service>/ (prefix stripped) and the paths its ServiceSpec claims, to that service."""

from __future__ import annotations

import re

from manifests import ROOT, rendered_base

from pitlane_platform.services import installed_services


def _expected() -> set[tuple[str, str, bool]]:
    routes = set()
    for spec in installed_services():
        routes.add((f"/api/{spec.name}", spec.name, True))
        routes |= {(path.rstrip("/"), spec.name, False) for path in spec.gateway_paths}
    return routes


def test_the_compose_gateway_routes_each_services_paths_to_it() -> None:
    caddyfile = (ROOT / "deploy" / "compose" / "Caddyfile").read_text()
    found = {
        (path.rstrip("/"), service, directive == "handle_path")
        for directive, path, service in re.findall(
            r"\t(handle_path|handle) (/[\w/-]+?)\*? \{\n\t\treverse_proxy ([\w-]+):8000", caddyfile
        )
    }
    assert found == _expected()


def test_the_k8s_httproutes_route_each_services_paths_to_it() -> None:
    found = set()
    for route in (d for d in rendered_base() if d["kind"] == "HTTPRoute"):
        for rule in route["spec"]["rules"]:
            (backend,) = rule["backendRefs"]
            strips = any(f["type"] == "URLRewrite" for f in rule.get("filters", []))
            for match in rule["matches"]:
                found.add((match["path"]["value"], backend["name"], strips))
    assert found == _expected()
