"""`python -m pitlane_platform.migrate <service>`: apply an installed service's migrations to its database and
exit — the migration step of a deployment (docker-compose's `migrate-<service>`, the Kubernetes Job), run
before the new release's processes start with `<PREFIX>APPLY_MIGRATIONS_AT_START=false`.

The database is the service's own `<PREFIX>DATABASE_URL`, with its TLS options; processes of the same service
migrating at once take turns (migrations.run_env's advisory lock), so a second run finds nothing to do.
"""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path

from pitlane_platform.migrations import upgrade
from pitlane_platform.serve import spec_named
from pitlane_platform.services import ServiceSpec
from pitlane_platform.settings import ServiceSettings


def migrations_of(spec: ServiceSpec) -> Path:
    """Every service keeps its Alembic history in `migrations/` of its top-level package (the one its app
    factory lives in), as its bootstrap hands it to the ServiceRuntime."""
    package = spec.asgi_factory.partition(":")[0].split(".")[0]
    found = importlib.util.find_spec(package)
    if found is None or not found.submodule_search_locations:
        raise SystemExit(f"{spec.name}: package {package} is not installed")
    location = Path(next(iter(found.submodule_search_locations))) / "migrations"
    if not (location / "env.py").is_file():
        raise SystemExit(f"{spec.name}: no Alembic history at {location}")
    return location


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m pitlane_platform.migrate", description=__doc__)
    parser.add_argument("service", help="an installed service's name, e.g. workorder")
    arguments = parser.parse_args(argv)
    spec = spec_named(arguments.service)
    settings = ServiceSettings(_env_prefix=spec.env_prefix)  # type: ignore[call-arg]
    upgrade(settings.database_url, migrations_of(spec))
    print(f"{spec.name}: migrated to head", flush=True)


if __name__ == "__main__":
    main()
