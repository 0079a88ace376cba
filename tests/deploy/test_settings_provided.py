"""Every environment variable a service reads — each field of its settings class, under its prefix, derived
from the code — is set for its API and its worker in docker-compose.yml and in the Kubernetes base, and every
variable set there under a service's prefix is one it reads (a misspelt name would be ignored silently:
the settings ignore unknown variables). An empty value stands for the setting's default."""

from __future__ import annotations

from typing import Any

import pytest
from manifests import ROOT, compose, env_file_variables, rendered_base, service_settings

from pitlane_platform.settings import ServiceSettings


def _compose_environment(service: dict[str, Any]) -> dict[str, Any]:
    variables: dict[str, Any] = {}
    for env_file in service.get("env_file", []):
        variables.update(env_file_variables(ROOT / env_file))
    variables.update(service.get("environment", {}))
    return variables


def _k8s_environment(container: dict[str, Any], config_maps: dict[str, dict[str, str]]) -> set[str]:
    names = {variable["name"] for variable in container.get("env", [])}
    for source in container.get("envFrom", []):
        names |= set(config_maps[source["configMapRef"]["name"]])
    return names


def _mismatch(provided: set[str], expected: set[str], prefix: str) -> dict[str, list[str]]:
    missing = sorted(expected - provided)
    unknown = sorted(name for name in provided - expected if name.startswith(prefix))
    return {"missing": missing, "not a setting": unknown}


@pytest.mark.parametrize("process", ["", "-worker"])
def test_every_setting_of_each_service_is_set_in_compose_and_every_variable_there_is_a_setting(
    process: str,
) -> None:
    services = compose()["services"]
    for settings in service_settings():
        environment = _compose_environment(services[f"{settings.spec.name}{process}"])
        assert _mismatch(set(environment), settings.variables, settings.spec.env_prefix) == {
            "missing": [],
            "not a setting": [],
        }, settings.spec.name


@pytest.mark.parametrize("process", ["api", "worker"])
def test_every_setting_of_each_service_is_set_in_the_k8s_base_and_every_variable_there_is_a_setting(
    process: str,
) -> None:
    documents = rendered_base()
    config_maps = {d["metadata"]["name"]: d.get("data", {}) for d in documents if d["kind"] == "ConfigMap"}
    deployments = {d["metadata"]["name"]: d for d in documents if d["kind"] == "Deployment"}
    for settings in service_settings():
        container = deployments[f"{settings.spec.name}-{process}"]["spec"]["template"]["spec"]["containers"][
            0
        ]
        provided = _k8s_environment(container, config_maps)
        assert _mismatch(provided, settings.variables, settings.spec.env_prefix) == {
            "missing": [],
            "not a setting": [],
        }, settings.spec.name
        # Secrets come from the service's Secret, never from its ConfigMap.
        from_secrets = {
            variable["name"]
            for variable in container["env"]
            if "secretKeyRef" in variable.get("valueFrom", {})
        }
        assert settings.secret_variables <= from_secrets, settings.spec.name


def test_a_setting_the_code_adds_and_the_manifests_lack_is_reported_missing() -> None:
    """The check above with one more field in a service's settings, as a change to the code would add."""
    settings = service_settings()[0]

    class Grown(settings.settings):  # type: ignore[name-defined,misc]
        deploy_probe_setting: int = 1

    grown = type(settings)(settings.spec, Grown)
    environment = _compose_environment(compose()["services"][settings.spec.name])
    assert _mismatch(set(environment), grown.variables, settings.spec.env_prefix)["missing"] == [
        f"{settings.spec.env_prefix}DEPLOY_PROBE_SETTING"
    ]


def test_a_variable_set_empty_is_the_settings_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROBE_DATABASE_URL", "postgresql://db/probe")
    monkeypatch.setenv("PROBE_NATS_URL", "nats://nats:4222")
    for name in ("CLOCK_FIXED_AT", "RELAY_BATCH_SIZE", "NATS_TLS_CA_FILE", "JWT_SECRET", "STREAM_REPLICAS"):
        monkeypatch.setenv(f"PROBE_{name}", "")
    settings = ServiceSettings(_env_prefix="PROBE_")  # type: ignore[call-arg]
    defaults = ServiceSettings.model_fields
    assert settings.clock_fixed_at is None and settings.nats_tls_ca_file is None
    assert settings.relay_batch_size == defaults["relay_batch_size"].default
    assert settings.jwt_secret == defaults["jwt_secret"].default
    assert settings.stream_replicas == 1
    monkeypatch.setenv("PROBE_STREAM_REPLICAS", "3")
    assert ServiceSettings(_env_prefix="PROBE_").stream_replicas == 3  # type: ignore[call-arg]
