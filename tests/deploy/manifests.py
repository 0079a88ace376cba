"""What the deploy tests read: the rendered Kubernetes overlays, docker-compose.yml as Compose reads it, each
installed service's settings as its code declares them, and the validators (kubernetes-validate for the
API's own kinds, the vendored CRD validators, the vendored compose-spec schema)."""

from __future__ import annotations

import importlib
import json
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import kubernetes_validate
import yaml
from jsonschema import Draft7Validator

from pitlane_platform.services import ServiceSpec, installed_services
from pitlane_platform.settings import ServiceSettings

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
OVERLAYS = ("dev", "prod")
COMPOSE_FILE = ROOT / "docker-compose.yml"
COMPOSE_SCHEMA = ROOT / "deploy" / "schemas" / "compose-spec.json"
CRD_VALIDATOR = K8S / "crd-validators" / "validate.cjs"
KUBERNETES_VERSION = "1.32"
# Groups whose kinds the vendored CRD validators check; every other kind is the Kubernetes API's own.
CUSTOM_GROUPS = ("keda.sh", "cert-manager.io", "gateway.networking.k8s.io", "postgresql.cnpg.io")


def kustomize(directory: Path) -> list[dict[str, Any]]:
    """`kubectl kustomize` of one kustomization: its objects, as the cluster would receive them."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        raise RuntimeError("kubectl (with kustomize) is needed: .ci/run installs it where it is missing")
    rendered = subprocess.run(
        [kubectl, "kustomize", str(directory)], capture_output=True, text=True, check=False, timeout=60
    )
    if rendered.returncode != 0:
        raise KustomizeFailed(rendered.stderr.strip())
    return [document for document in yaml.safe_load_all(rendered.stdout) if document]


class KustomizeFailed(Exception):
    pass


def is_custom(document: dict[str, Any]) -> bool:
    return str(document["apiVersion"]).split("/")[0] in CUSTOM_GROUPS


def core_errors(documents: list[dict[str, Any]]) -> list[str]:
    """The Kubernetes API's own kinds against its OpenAPI schemas (strict: an unknown field is an error)."""
    errors = []
    for document in documents:
        if is_custom(document):
            continue
        try:
            kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as error:
            errors.append(
                f"{document['kind']}/{document['metadata']['name']}: {error.message} at {error.path}"
            )
        except kubernetes_validate.SchemaNotFoundError as error:
            errors.append(f"{document['kind']}/{document['metadata']['name']}: {error}")
    return errors


def custom_errors(documents: list[dict[str, Any]]) -> list[str]:
    """The custom resources against the CRD schemas of their projects (deploy/k8s/crd-validators)."""
    custom = [document for document in documents if is_custom(document)]
    checked = subprocess.run(
        ["node", str(CRD_VALIDATOR)], input=json.dumps(custom), capture_output=True, text=True, timeout=60
    )
    results = [json.loads(line) for line in checked.stdout.splitlines()]
    if len(results) != len(custom):
        raise RuntimeError(f"the CRD validator answered {len(results)} of {len(custom)}: {checked.stderr}")
    return [f"{r['kind']}/{r['name']}: {'; '.join(r['errors'])}" for r in results if r["errors"]]


def compose_errors(compose: dict[str, Any]) -> list[str]:
    schema = json.loads(COMPOSE_SCHEMA.read_text())
    return [
        f"{'/'.join(map(str, error.absolute_path))}: {error.message}"
        for error in Draft7Validator(schema).iter_errors(compose)
    ]


@cache
def rendered(overlay: str) -> tuple[dict[str, Any], ...]:
    return tuple(kustomize(K8S / "overlays" / overlay))


@cache
def rendered_base() -> tuple[dict[str, Any], ...]:
    return tuple(kustomize(K8S / "base"))


def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text())


# ---- the services' settings, from their code


@dataclass(frozen=True)
class ServiceSettingsOf:
    spec: ServiceSpec
    settings: type[ServiceSettings]

    @property
    def variables(self) -> set[str]:
        """Every environment variable the service's settings read: `<PREFIX><FIELD>` of each field."""
        return {f"{self.spec.env_prefix}{name.upper()}" for name in self.settings.model_fields}

    @property
    def secret_variables(self) -> set[str]:
        """The settings whose type keeps them out of logs (SecretStr): they come from Secrets, never from
        a ConfigMap or the env file."""
        return {
            f"{self.spec.env_prefix}{name.upper()}"
            for name, field in self.settings.model_fields.items()
            if "SecretStr" in str(field.annotation)
        }


def _subclasses(cls: type[ServiceSettings]) -> Iterator[type[ServiceSettings]]:
    for subclass in cls.__subclasses__():
        yield subclass
        yield from _subclasses(subclass)


@cache
def service_settings() -> tuple[ServiceSettingsOf, ...]:
    """Each installed service with the settings class its bootstrap defines (the ServiceSettings subclass
    reading the service's env prefix)."""
    found = []
    for spec in installed_services():
        module = spec.asgi_factory.partition(":")[0]
        importlib.import_module(module)
        # The service's own class: a test elsewhere may define one reading the same prefix.
        package = module.partition(".")[0]
        matching = [
            cls
            for cls in _subclasses(ServiceSettings)
            if cls.model_config.get("env_prefix") == spec.env_prefix
            and cls.__module__.partition(".")[0] == package
        ]
        if len(matching) != 1:
            raise AssertionError(f"{spec.name}: {len(matching)} settings classes read {spec.env_prefix}")
        found.append(ServiceSettingsOf(spec, matching[0]))
    return tuple(found)


def env_file_variables(path: Path) -> dict[str, str]:
    """`KEY=value` lines of an env file (as kustomize and Compose read it), comments and blanks skipped."""
    variables = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            variables[key.strip()] = value
    return variables
