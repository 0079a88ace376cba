"""`pitlane analytics rebuild` with analytics running live: the scripted history (scripted_history.py) is
delivered to the live service, then the command line rebuilds its read models from the streams and swaps them
in while the headline is asked over and over. Every KPI answer — each KPI's JSON and CSV, for the chain and
for a branch, and the headline — is the same before, during and after the rebuild."""

from __future__ import annotations

import asyncio
import re
from typing import Any

from analytics_harness import Harness
from scripted_history import FROM, TO, events
from typer.testing import CliRunner, Result

from pitlane_platform.cli import app as pitlane
from pitlane_platform.messaging.rebuild import BACKUP_SCHEMA

PERIOD = {"from": FROM.isoformat(), "to": TO.isoformat()}


async def every_answer(harness: Harness) -> dict[str, tuple[int, Any]]:
    """Each KPI the API documents, as JSON and as CSV, for the period, the chain and branch b1; and the
    churned customers' drill-down."""
    paths = [
        path
        for path, operations in harness.service.app.openapi()["paths"].items()
        if path.startswith("/v1/kpis") and "{" not in path and "get" in operations
    ]
    asked = [
        (path, {**PERIOD, **branch, **output})
        for path in paths
        for branch in ({}, {"branch_id": "b1"})
        for output in ({}, {"format": "csv"})
    ]
    asked.append(("/v1/kpis/customer-activity", {**PERIOD, "status": "churned", "days": "90"}))
    answers: dict[str, tuple[int, Any]] = {}
    for path, params in asked:
        response = await harness.get(path, params=params)
        body = (
            response.json() if response.headers["content-type"].startswith("application/") else response.text
        )
        if isinstance(body, dict):
            # A refusal's trace id is its request's own (set whenever a tracer records, as in a full run).
            body.pop("trace_id", None)
        answers[f"{path}?{sorted(params.items())}"] = (response.status_code, body)
    return answers


def rebuild_from_the_command_line(harness: Harness) -> Result:
    """`pitlane analytics rebuild` with the service's own environment, as a deployment's job runs it."""
    return CliRunner().invoke(
        pitlane,
        ["analytics", "rebuild", "--batch-size", "20"],
        env={
            "ANALYTICS_DATABASE_URL": harness.settings.database_url,
            "ANALYTICS_NATS_URL": harness.settings.nats_url,
        },
    )


async def test_a_rebuild_answers_every_kpi_as_the_live_read_models_did(harness: Harness) -> None:
    history = events(harness)
    await harness.deliver(history, copies=2)
    before = await every_answer(harness)
    assert sum(status == 200 for status, _ in before.values()) >= 40  # the KPIs answered, not refused
    headline = before[f"/v1/kpis?{sorted(PERIOD.items())}"]

    rebuilding = asyncio.create_task(asyncio.to_thread(rebuild_from_the_command_line, harness))
    asked_during = 0
    while not rebuilding.done():
        assert (await harness.kpi("/v1/kpis", **PERIOD)) == headline[1]
        asked_during += 1
    result = rebuilding.result()

    assert result.exit_code == 0, result.output
    # Every event once, its copy (delivered twice) a duplicate to the fresh inbox.
    handled = {event_type for consumer in harness.runtime.consumers for event_type in consumer.handlers}
    replayed = len([envelope for envelope in history if envelope.event_type in handled])
    assert sum(int(n) for n in re.findall(r"(\d+) applied", result.stdout)) == replayed
    assert sum(int(n) for n in re.findall(r"(\d+) duplicate", result.stdout)) == replayed
    assert asked_during > 0
    assert await every_answer(harness) == before
    # The replaced tables wait in the backup schema, as full as the rebuilt ones in their place.
    [backup] = await harness.rows(f"SELECT count(*) AS n FROM {BACKUP_SCHEMA}.work_orders")
    [live] = await harness.rows("SELECT count(*) AS n FROM work_orders")
    assert backup["n"] == live["n"] > 0
