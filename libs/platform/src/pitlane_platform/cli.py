"""The `pitlane` command line: run the system on one machine, mint dev tokens, read the messages the recording
provider kept, handle dead letters, rebuild a service's read models (`pitlane <service> rebuild`)."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from pitlane_platform.settings import DEV_JWT_SECRET, ServiceSettings

if TYPE_CHECKING:  # the command line imports the messaging modules only when a command needs them
    from importlib.metadata import EntryPoint

    from pitlane_platform.messaging.deadletter import DeadLetter
    from pitlane_platform.messaging.rebuild import RebuildReport
    from pitlane_platform.runtime import ServiceRuntime
    from pitlane_platform.security.nats_access import NatsClientAccess
    from pitlane_platform.services import ServiceSpec

app = typer.Typer(no_args_is_help=True, add_completion=False, help="Pitlane: run and operate the system.")
dlq_app = typer.Typer(no_args_is_help=True, help="Dead letters: events a consumer gave up on.")
app.add_typer(dlq_app, name="dlq")

DataDir = Annotated[
    Path, typer.Option("--data-dir", envvar="PITLANE_DATA_DIR", help="where NATS and PostgreSQL keep data")
]


@app.command()
def up(
    data_dir: DataDir = Path(".pitlane"),
    api_workers: Annotated[
        int,
        typer.Option(
            min=1,
            help="API processes per service; above 1, each service's relay and consumers run in a worker "
            "process of their own",
        ),
    ] = 1,
    gateway_port: Annotated[
        int,
        typer.Option(
            envvar="PITLANE_GATEWAY_PORT",
            min=1,
            max=65535,
            help="the HTTPS port of the gateway, the one URL of the system (kept across restarts)",
        ),
    ] = 8443,
    public_base_url: Annotated[
        str | None,
        typer.Option(
            envvar="PITLANE_PUBLIC_BASE_URL",
            help="where customers reach the gateway, the base of every link sent to them; default "
            "https://localhost:<gateway port>",
        ),
    ] = None,
    demo: Annotated[
        bool,
        typer.Option(
            "--demo/--no-demo",
            envvar="PITLANE_DEMO",
            help="on an empty data directory, play the demo chain once everything runs (`make up` does)",
        ),
    ] = False,
    demo_size: Annotated[
        str, typer.Option(help="full (5 branches, 3,000 customers, two years) or small (for tests)")
    ] = "full",
) -> None:
    """Start NATS (JetStream, TLS) and PostgreSQL, create and migrate each service's database, start every
    service on loopback and the HTTPS gateway in front of them."""
    from pitlane_platform.devcluster import run_up

    run_up(
        data_dir,
        api_workers=api_workers,
        gateway_port=gateway_port,
        public_base_url=public_base_url,
        demo_size=_demo_size(demo_size) if demo else None,
    )


def _demo_size(name: str) -> str:
    from pitlane_platform.devcluster.demo import SIZES

    if name not in SIZES:
        raise typer.BadParameter(f"one of {', '.join(SIZES)}", param_hint="--demo-size")
    return name


@app.command()
def demo(
    data_dir: DataDir = Path(".pitlane"),
    size: Annotated[str, typer.Option(help="full or small")] = "full",
) -> None:
    """Play the demo chain against the running `pitlane up --demo` of --data-dir (its services follow the
    clock the demo steers; `make up` plays it by itself on an empty data directory)."""
    from pitlane_platform.devcluster import read_state
    from pitlane_platform.devcluster.demo import SIZES, play_demo

    state = read_state(data_dir)
    if state is None or "stopped_at" in state:
        raise typer.BadParameter(f"no running `pitlane up` in {data_dir}", param_hint="--data-dir")
    try:
        play_demo(state, SIZES[_demo_size(size)], typer.echo)
    except RuntimeError as refusal:
        raise typer.BadParameter(str(refusal), param_hint="--data-dir") from None


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
    ttl: Annotated[
        str, typer.Option(help="lifetime: 90s, 30m, 8h; at most 12h (services refuse longer-lived tokens)")
    ] = "8h",
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


@app.command()
def messages(
    address: Annotated[
        str | None, typer.Option(help="only those to this phone (11 digits), open id or e-mail")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=500)] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object per line")] = False,
    url: Annotated[
        str | None,
        typer.Option(
            envvar="NOTIFICATION_URL", help="the notification service; default: the one `pitlane up` runs"
        ),
    ] = None,
    data_dir: DataDir = Path(".pitlane"),
) -> None:
    """What the recording provider "sent" (development: every channel without a provider of its own), newest
    first: each message as the customer would have got it."""
    import json

    import httpx

    from pitlane_platform.auth import mint_dev_token
    from pitlane_platform.devcluster import read_state

    if url is None:
        state = read_state(data_dir) or {}
        url = ((state.get("services") or {}).get("notification") or {}).get("http_url")
        if not url:
            raise typer.BadParameter(
                f"no notification service in {data_dir}/state.json: is `pitlane up` running?"
            )
    token = mint_dev_token(
        os.environ.get("PITLANE_JWT_SECRET", DEV_JWT_SECRET),
        role="owner",
        branches=["*"],
        sub="pitlane-cli",
        chain=os.environ.get("PITLANE_CHAIN_ID", DEFAULT_CHAIN_ID),
        ttl=timedelta(minutes=5),
        issuer=DEFAULT_JWT_ISSUER,
        audience=DEFAULT_JWT_AUDIENCE,
    )
    answer = httpx.get(
        f"{url.rstrip('/')}/v1/recorded-messages",
        params={"limit": limit, **({"address": address} if address else {})},
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    if answer.status_code != 200:
        raise typer.BadParameter(f"notification answered {answer.status_code}: {answer.text[:200]}")
    recorded = answer.json()["messages"]
    for message in recorded:
        if as_json:
            typer.echo(json.dumps(message, ensure_ascii=False))
        else:
            typer.echo(
                f"{message['recorded_at']} {message['channel']} to {message['address']}: {message['body']}"
            )
    if not as_json:
        typer.echo(f"{len(recorded)} message(s)")


NatsUrl = Annotated[
    str | None,
    typer.Option("--nats-url", envvar="NATS_URL", help="default: the NATS of `pitlane up` in --data-dir"),
]


def _nats_url(nats_url: str | None, data_dir: Path) -> tuple[str, dict[str, Any]]:
    """The URL and the connection options (TLS, user) of the NATS to reach."""
    if nats_url:
        return nats_url, {}
    from pitlane_platform.devcluster import nats_access, read_state

    state = read_state(data_dir)
    if state is None:
        raise typer.BadParameter(
            "no --nats-url and no `pitlane up` state in --data-dir", param_hint="--nats-url"
        )
    return str(state["nats"]["url"]), nats_access(state).connect_options()


DatabaseUrl = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        envvar="PITLANE_CONSUMER_DATABASE_URL",
        help="the consuming service's database, to count held-back messages; default: from `pitlane up`",
    ),
]


@dlq_app.command("list")
def dlq_list(
    consumer: Annotated[str | None, typer.Option(help="only this consumer's, e.g. analytics_kpi")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object per line")] = False,
    nats_url: NatsUrl = None,
    database_url: DatabaseUrl = None,
    data_dir: DataDir = Path(".pitlane"),
) -> None:
    """List dead letters: which consumer gave up on which event, after how many attempts, and why, and how
    many later messages of its aggregate wait behind it (a replay applies them in order)."""
    import asyncio
    import json

    from pitlane_platform.messaging.deadletter import list_dead_letters

    letters = asyncio.run(
        _with_jetstream(*_nats_url(nats_url, data_dir), lambda js: list_dead_letters(js, consumer=consumer))
    )
    held = asyncio.run(_held_behind(letters, database_url, data_dir))
    for letter, waiting in zip(letters, held, strict=True):
        summary = {**letter.summary(), "held_back": waiting}
        if as_json:
            typer.echo(json.dumps(summary, ensure_ascii=False))
        else:
            typer.echo(
                f"#{summary['seq']} {summary['consumer']} {summary['event_type']} {summary['event_id']} "
                f"after {summary['attempts']} attempts at {summary['at']}: {summary['error']}"
                + (f" ({waiting} message(s) of its aggregate held back)" if waiting is not None else "")
            )
    if not as_json:
        typer.echo(f"{len(letters)} dead letter(s)")


@dlq_app.command("replay")
def dlq_replay(
    consumer: Annotated[str | None, typer.Option(help="replay only this consumer's dead letters")] = None,
    seq: Annotated[list[int] | None, typer.Option("--seq", help="replay only these (repeat it)")] = None,
    nats_url: NatsUrl = None,
    data_dir: DataDir = Path(".pitlane"),
) -> None:
    """Send dead letters back to their consumer (after the fix is deployed); each leaves the dead letters."""
    import asyncio

    from pitlane_platform.messaging.deadletter import replay

    if consumer is None and not seq:
        raise typer.BadParameter("say which: --consumer NAME and/or --seq N", param_hint="--consumer")
    replayed = asyncio.run(
        _with_jetstream(
            *_nats_url(nats_url, data_dir),
            lambda js: replay(js, consumer=consumer, sequences=set(seq) if seq else None),
        )
    )
    for letter in replayed:
        typer.echo(f"replayed #{letter.sequence} {letter.event_type} {letter.event_id} to {letter.consumer}")
    typer.echo(f"{len(replayed)} dead letter(s) replayed")


async def _held_behind(
    letters: list[DeadLetter], database_url: str | None, data_dir: Path
) -> list[int | None]:
    """Per dead letter, the messages its consumer holds back behind it; None where no database is known."""
    import contextlib

    import psycopg

    from pitlane_platform.db import libpq_url
    from pitlane_platform.devcluster import read_state, service_database_urls
    from pitlane_platform.messaging.health import messages_held_behind, service_of

    state = read_state(data_dir) if database_url is None else None
    databases = service_database_urls(state) if state is not None else {}
    counts: list[int | None] = []
    async with contextlib.AsyncExitStack() as stack:
        connections: dict[str, psycopg.AsyncConnection[Any]] = {}  # one per database, however many letters
        for letter in letters:
            url = database_url or databases.get(service_of(letter.consumer))
            if url is None:
                counts.append(None)
                continue
            if url not in connections:
                connections[url] = await stack.enter_async_context(
                    await psycopg.AsyncConnection.connect(libpq_url(url), autocommit=True)
                )
            counts.append(await messages_held_behind(connections[url], letter))
    return counts


async def _with_jetstream(url: str, options: dict[str, Any], action):  # type: ignore[no-untyped-def]
    import nats

    client = await nats.connect(url, connect_timeout=5, max_reconnect_attempts=0, **options)
    try:
        return await action(client.jetstream())
    finally:
        await client.close()


def _service_command_groups() -> None:
    """`pitlane <service> …` for every installed service, known by its entry point's name: nothing of a
    service is imported until one of its commands runs."""
    from importlib.metadata import entry_points

    from pitlane_platform.services import ENTRY_POINT_GROUP

    for entry_point in entry_points(group=ENTRY_POINT_GROUP):
        service_app = typer.Typer(no_args_is_help=True, help=f"Operate the {entry_point.name} service.")
        service_app.command("rebuild")(_rebuild_command(entry_point))
        app.add_typer(service_app, name=entry_point.name)


def _rebuild_command(entry_point: EntryPoint) -> Callable[..., None]:
    service = entry_point.name

    def rebuild(
        keep_backup: Annotated[
            bool,
            typer.Option(
                "--keep-backup/--drop-backup",
                help="keep the replaced tables in schema read_models_previous until the next rebuild; drop "
                "them if they hold personal data (erasures after the swap do not reach that copy)",
            ),
        ] = True,
        batch_size: Annotated[int, typer.Option(min=1, max=10_000, help="events per transaction")] = 500,
        data_dir: DataDir = Path(".pitlane"),
    ) -> None:
        """Rebuild the service's read models from the streams and swap them in, while it runs.

        Every stream it consumes is replayed into fresh tables, which replace its read models in one
        transaction (docs/platform.md, "Rebuilding read models"). Its settings come from its environment
        variables (<PREFIX>DATABASE_URL, …), else from the `pitlane up` in --data-dir."""
        import asyncio

        from pitlane_platform.messaging.rebuild import RebuildFailed
        from pitlane_platform.worker import load_factory

        spec: ServiceSpec = entry_point.load()
        if spec.runtime_factory is None:
            raise typer.BadParameter(f"{service} declares no read models to rebuild")
        access = _service_environment_from_up(spec, data_dir)
        try:
            report = asyncio.run(
                _rebuild(load_factory(spec.runtime_factory), access, keep_backup, batch_size)
            )
        except RebuildFailed as failure:
            typer.echo(f"rebuild of {service} stopped, its read models unchanged: {failure}", err=True)
            raise typer.Exit(1) from None
        for line in report.lines():
            typer.echo(line)

    return rebuild


def _service_environment_from_up(spec: ServiceSpec, data_dir: Path) -> NatsClientAccess | None:
    """Without the service's own environment (<PREFIX>DATABASE_URL), its database and NATS are those of the
    `pitlane up` in `data_dir`, reached as the operator: set them for its settings; the access to NATS."""
    prefix = spec.env_prefix
    if f"{prefix}DATABASE_URL" in os.environ:
        return None
    from pitlane_platform.db import sqlalchemy_url
    from pitlane_platform.devcluster import nats_access, read_state
    from pitlane_platform.embedded import database_url

    state = read_state(data_dir)
    if state is None:
        raise typer.BadParameter(
            f"no {prefix}DATABASE_URL and no `pitlane up` state in --data-dir", param_hint="--data-dir"
        )
    os.environ[f"{prefix}DATABASE_URL"] = sqlalchemy_url(
        database_url(state["postgres"]["url"], spec.database)
    )
    os.environ.setdefault(f"{prefix}NATS_URL", str(state["nats"]["url"]))
    return nats_access(state)


async def _rebuild(
    create_runtime: Callable[[], ServiceRuntime],
    access: NatsClientAccess | None,
    keep_backup: bool,
    batch_size: int,
) -> RebuildReport:
    from pitlane_platform.messaging.connection import connect_nats
    from pitlane_platform.messaging.rebuild import ReadModels, rebuild_read_models

    runtime = create_runtime()  # built in the event loop, as the service's processes build it
    if not runtime.read_models:
        raise typer.BadParameter(f"{runtime.service} declares no read models to rebuild")
    client = await connect_nats(
        runtime.settings.nats_url,
        name=f"{runtime.service}-rebuild",
        access=access or runtime.settings.nats_access(),
        first_connect_timeout_s=10,
    )
    try:
        return await rebuild_read_models(
            ReadModels(runtime.service, runtime.consumers, runtime.read_models, runtime.derive_read_models),
            database_url=runtime.settings.database_url,
            js=client.jetstream(),
            clock=runtime.clock,
            batch_size=batch_size,
            keep_backup=keep_backup,
        )
    finally:
        await client.close()
        await runtime.engine.dispose()


_service_command_groups()
