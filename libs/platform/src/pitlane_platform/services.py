"""How a service makes itself known to `pitlane up`: an entry point in the `pitlane.services` group whose
value is a ServiceSpec. A service that is installed in the environment exists; nothing else lists them."""

from __future__ import annotations

from dataclasses import dataclass
from importlib.metadata import entry_points

ENTRY_POINT_GROUP = "pitlane.services"


@dataclass(frozen=True)
class ServiceSpec:
    name: str  # e.g. "workorder"; also its database name and its JetStream stream's subject prefix
    env_prefix: str  # e.g. "WORKORDER_": its settings are read from these environment variables
    asgi_factory: str  # "package.module:create_app", called with no arguments, returns the ASGI app
    # The producers whose streams its consumers read (besides its own): its NATS user may read those only.
    consumes: tuple[str, ...] = ()
    # Paths the gateway sends to it as they are, besides `/api/<name>/…`: `/c/` (customer pages) or
    # `/dashboard` (analytics); devcluster/gateway.py refuses any other.
    gateway_paths: tuple[str, ...] = ()
    # "package.module:function", called with no arguments, returning the service's ServiceRuntime with its
    # settings from the environment: for commands run outside the service's processes. A runtime that
    # declares `read_models` makes `pitlane <name> rebuild` available.
    runtime_factory: str | None = None

    @property
    def database(self) -> str:
        return self.name.replace("-", "_")


def installed_services() -> list[ServiceSpec]:
    specs = [ep.load() for ep in entry_points(group=ENTRY_POINT_GROUP)]
    for spec in specs:
        if not isinstance(spec, ServiceSpec):
            raise TypeError(f"entry point in {ENTRY_POINT_GROUP} must be a ServiceSpec, got {spec!r}")
    return sorted(specs, key=lambda s: s.name)
