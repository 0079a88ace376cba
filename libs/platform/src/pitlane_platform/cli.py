"""The `pitlane` command line: run the system on one machine, mint dev tokens, handle dead letters."""

from __future__ import annotations

import os
import re
from datetime import timedelta
from pathlib import Path
from typing import Annotated

import typer

from pitlane_platform.settings import DEV_JWT_SECRET, ServiceSettings

app = typer.Typer(no_args_is_help=True, add_completion=False, help="Pitlane: run and operate the system.")
dlq_app = typer.Typer(no_args_is_help=True, help="Dead letters: events a consumer gave up on.")
app.add_typer(dlq_app, name="dlq")

DataDir = Annotated[Path, typer.Option("--data-dir", envvar="PITLANE_DATA_DIR", help="where NATS and PostgreSQL keep data")]


@app.command()
def up(data_dir: DataDir = Path(".pitlane")) -> None:
    """Start NATS (JetStream) and PostgreSQL, create and migrate each service's database, start every service."""
    from pitlane_platform.devcluster import run_up

    run_up(data_dir)


@app.command()
def status(data_dir: DataDir = Path(".pitlane")) -> None:
    """Show what runs where."""
    from pitlane_platform.devcluster import print_status

    raise typer.Exit(print_status(data_dir))


# `pitlane token` runs outside any service, so it takes the service defaults; the env overrides them.
DEFAULT_CHAIN_ID = ServiceSettings.model_fields["chain_id"].default
DEFAULT_JWT_ISSUER = ServiceSettings.model_fields["jwt_issuer"].default
DEFAULT_JWT_AUDIENCE = ServiceSettings.model_fields["jwt_audience"].default
TTL_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _parse_ttl(text: str) -> timedelta:
    match = re.fullmatch(r"(\d+)([smhd])", text.strip())
    if match is None:
        raise typer.BadParameter("write it as a number and a unit: 90s, 30m, 8h, 7d")
    return timedelta(seconds=int(match.group(1)) * TTL_UNITS[match.group(2)])


@app.command()
def token(
    role: Annotated[str, typer.Option(help="owner, manager, advisor, technician, finance or analyst")],
    branch: Annotated[
        list[str], typer.Option("--branch", help="a branch the user may see; repeat it; '*' (quoted) for all")
    ],
    sub: Annotated[str | None, typer.Option(help="the user id; default dev-<role>")] = None,
    ttl: Annotated[str, typer.Option(help="lifetime: 90s, 30m, 8h, 7d")] = "8h",
    chain: Annotated[str, typer.Option(envvar="PITLANE_CHAIN_ID")] = DEFAULT_CHAIN_ID,
    issuer: Annotated[str, typer.Option(envvar="PITLANE_JWT_ISSUER")] = DEFAULT_JWT_ISSUER,
    audience: Annotated[str, typer.Option(envvar="PITLANE_JWT_AUDIENCE")] = DEFAULT_JWT_AUDIENCE,
) -> None:
    """Print a development bearer token, HS256-signed with $PITLANE_JWT_SECRET (default: the dev secret)."""
    from pitlane_platform.auth import Role, mint_dev_token

    if role not in set(Role):
        raise typer.BadParameter(f"one of {', '.join(Role)}", param_hint="--role")
    try:
        minted = mint_dev_token(
            # From the environment only: a secret given as an argument would end up in shell history and `ps`.
            os.environ.get("PITLANE_JWT_SECRET", DEV_JWT_SECRET),
            role=role,
            branches=branch,
            sub=sub or f"dev-{role}",
            chain=chain,
            ttl=_parse_ttl(ttl),
            issuer=issuer,
            audience=audience,
        )
    except ValueError as error:
        raise typer.BadParameter(str(error)) from None
    typer.echo(minted)
