"""The `pitlane` command line: run the system on one machine, mint dev tokens, handle dead letters."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

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
