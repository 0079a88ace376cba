"""docker-compose.yml against the compose specification's schema (vendored: deploy/schemas/compose-spec.json),
a broken copy refused, and what the compose file promises: a database per service, each service's migration
before its API and worker, health conditions."""

from __future__ import annotations

import re

import yaml
from manifests import COMPOSE_FILE, K8S, ROOT, compose, compose_errors

from pitlane_platform.services import installed_services


def test_compose_file_passes_the_compose_specification() -> None:
    assert compose_errors(compose()) == []


def test_a_broken_compose_file_is_refused_naming_the_place() -> None:
    broken = yaml.safe_load(COMPOSE_FILE.read_text())
    broken["services"]["workorder"]["depends_on"]["nats"]["condition"] = "service_ready"
    broken["services"]["nats"]["ports"] = "14222:4222"
    errors = compose_errors(broken)
    assert any(error.startswith("services/workorder/depends_on") for error in errors)
    assert any(error.startswith("services/nats/ports") for error in errors)


def test_every_service_gets_its_database_and_role_on_first_start_in_compose_and_dev() -> None:
    script = (ROOT / "deploy" / "compose" / "postgres-init.sql").read_text()
    created = set(re.findall(r"CREATE DATABASE (\w+) OWNER (\w+);", script))
    assert created == {(spec.database, spec.database) for spec in installed_services()}
    assert (K8S / "overlays" / "dev" / "postgres-init.sql").read_text() == script


def test_each_service_migrates_before_its_processes_start_and_waits_for_healthy_servers() -> None:
    services = compose()["services"]
    for spec in installed_services():
        for process in (spec.name, f"{spec.name}-worker"):
            depends = services[process]["depends_on"]
            assert depends[f"migrate-{spec.name}"]["condition"] == "service_completed_successfully"
            assert depends["nats"]["condition"] == "service_healthy"
        assert services[f"migrate-{spec.name}"]["depends_on"]["postgres"]["condition"] == "service_healthy"
        assert services["gateway"]["depends_on"][spec.name]["condition"] == "service_healthy"
        assert services[f"migrate-{spec.name}"]["command"][-1] == spec.name
