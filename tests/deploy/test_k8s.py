"""deploy/k8s: each overlay renders with `kubectl kustomize`, and every object passes its schema — the
Kubernetes API's own kinds through kubernetes-validate (strict), the custom resources of KEDA, cert-manager,
the Gateway API and CloudNativePG through the validators compiled from their CRDs — and a broken copy of the
manifests fails, naming what is broken."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from manifests import (
    K8S,
    OVERLAYS,
    KustomizeFailed,
    core_errors,
    custom_errors,
    kustomize,
    rendered,
    rendered_base,
)

from pitlane_platform.security.nats_access import OPERATOR, public_key_of_seed, service_permissions
from pitlane_platform.services import installed_services


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_each_overlay_renders_and_every_object_passes_its_schema(overlay: str) -> None:
    documents = list(rendered(overlay))
    kinds = {document["kind"] for document in documents}
    # The overlay holds what the issue asks of it, so "no errors" is about real objects.
    assert {"Deployment", "Job", "HorizontalPodAutoscaler", "ScaledObject", "HTTPRoute", "Gateway"} <= kinds
    assert core_errors(documents) == []
    assert custom_errors(documents) == []


def test_prod_runs_nats_as_a_three_node_cluster_and_postgres_on_cloudnativepg_with_streams_r3() -> None:
    documents = rendered("prod")
    nats = next(d for d in documents if d["kind"] == "StatefulSet" and d["metadata"]["name"] == "nats")
    assert nats["spec"]["replicas"] == 3
    cluster = next(d for d in documents if d["kind"] == "Cluster")
    assert cluster["spec"]["instances"] == 3
    databases = {d["spec"]["name"] for d in documents if d["kind"] == "Database"}
    assert databases == {spec.database for spec in installed_services()}
    replicas = {
        key: value
        for d in documents
        if d["kind"] == "ConfigMap"
        for key, value in d.get("data", {}).items()
        if key.endswith("_STREAM_REPLICAS")
    }
    assert replicas and set(replicas.values()) == {"3"}
    # Secrets by reference: prod holds none of its own.
    assert [d["metadata"]["name"] for d in documents if d["kind"] == "Secret"] == []


def _broken_copy(tmp_path: Path) -> Path:
    copy = tmp_path / "k8s"
    shutil.copytree(K8S, copy, ignore=shutil.ignore_patterns("crd-validators"))
    return copy


def _replace(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1))


def test_a_misspelled_field_of_a_deployment_fails_the_kubernetes_schema(tmp_path: Path) -> None:
    copy = _broken_copy(tmp_path)
    _replace(copy / "base" / "workorder.yaml", "readOnlyRootFilesystem: true", "readOnlyRootFileSystem: true")
    errors = core_errors(kustomize(copy / "overlays" / "dev"))
    assert errors and all(error.startswith(("Deployment/workorder-", "Job/workorder-")) for error in errors)
    assert any("readOnlyRootFileSystem" in error for error in errors)


def test_a_wrong_type_in_a_deployment_fails_the_kubernetes_schema(tmp_path: Path) -> None:
    copy = _broken_copy(tmp_path)
    _replace(copy / "base" / "reminder.yaml", "replicas: 2", "replicas: two")
    errors = core_errors(kustomize(copy / "overlays" / "prod"))
    assert len(errors) == 1 and errors[0].startswith("Deployment/reminder-api")


@pytest.mark.parametrize(
    ("overlay", "file", "old", "new", "broken"),
    [
        ("prod", "overlays/prod/postgres.yaml", "instances: 3", "instances: three", "Cluster/pitlane-db"),
        (
            "dev",
            "base/analytics.yaml",
            "maxReplicaCount: 3",
            "maxReplicaCount: many",
            "ScaledObject/analytics-worker",
        ),
        ("dev", "base/gateway.yaml", "type: PathPrefix", "type: Prefix", "HTTPRoute/analytics"),
        (
            "prod",
            "overlays/prod/certificates.yaml",
            "kind: ClusterIssuer",
            "kind: 7",
            "Certificate/nats-server",
        ),
    ],
)
def test_a_broken_custom_resource_fails_its_crd_schema(
    tmp_path: Path, overlay: str, file: str, old: str, new: str, broken: str
) -> None:
    copy = _broken_copy(tmp_path)
    _replace(copy / file, old, new)
    errors = custom_errors(kustomize(copy / "overlays" / overlay))
    assert [error.split(":")[0] for error in errors] == [broken]


def test_a_manifest_that_does_not_render_fails(tmp_path: Path) -> None:
    copy = _broken_copy(tmp_path)
    (copy / "base" / "config" / "notification.env").unlink()
    with pytest.raises(KustomizeFailed, match=r"notification\.env"):
        kustomize(copy / "overlays" / "dev")


def test_dev_nats_users_hold_exactly_the_permissions_the_code_gives_each_service() -> None:
    dev = K8S / "overlays" / "dev" / "nats"
    text = (dev / "authorization.conf").read_text()
    users = json.loads(text[text.index("authorization:") + len("authorization:") :])["users"]
    expected = {public_key_of_seed(dev / "users" / f"{OPERATOR}.nk")}
    by_key = {user["nkey"]: user["permissions"] for user in users}
    for spec in installed_services():
        key = public_key_of_seed(dev / "users" / f"{spec.name}.nk")
        expected.add(key)
        assert by_key.get(key) == service_permissions(spec.name, spec.consumes), spec.name
    assert set(by_key) == expected


def _by_kind(kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in rendered_base() if d["kind"] == kind}


def test_every_service_has_api_and_worker_deployments_a_migration_job_and_hardened_pods() -> None:
    deployments, jobs = _by_kind("Deployment"), _by_kind("Job")
    for spec in installed_services():
        api, worker = deployments[f"{spec.name}-api"], deployments[f"{spec.name}-worker"]
        migrate = jobs[f"{spec.name}-migrate"]
        commands = [w["spec"]["template"]["spec"]["containers"][0]["command"] for w in (api, worker, migrate)]
        assert commands[0][:5] == ["python", "-m", "uvicorn", "--factory", spec.asgi_factory]
        assert commands[1] == ["python", "-m", "pitlane_platform.worker", spec.asgi_factory]
        assert commands[2] == ["python", "-m", "pitlane_platform.migrate", spec.name]
        for workload in (api, worker, migrate):
            pod = workload["spec"]["template"]["spec"]
            container = pod["containers"][0]
            assert pod["securityContext"]["runAsNonRoot"] is True
            assert container["securityContext"]["readOnlyRootFilesystem"] is True
            assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
            assert container["resources"]["requests"] and container["resources"]["limits"]
        assert {"readinessProbe", "livenessProbe"} <= set(api["spec"]["template"]["spec"]["containers"][0])
