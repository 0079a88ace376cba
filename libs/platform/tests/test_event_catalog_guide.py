"""docs/events/README.md tells readers outside Pitlane how to subscribe to the streams; its nats-py reader is
run here exactly as printed, against a real nats-server holding streams as Pitlane's relays fill them."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import nats

from pitlane_events import Actor, Envelope
from pitlane_events.catalog import SUBSCRIBER_EXAMPLE
from pitlane_platform.messaging.streams import declare_stream, service_stream
from pitlane_platform.testing.jetstream import publish_envelopes
from pitlane_platform.testing.shop import work_order_completed, work_order_opened

README = Path(__file__).resolve().parents[3] / "docs" / "events" / "README.md"
START = datetime(2026, 3, 1, 2, 0, tzinfo=UTC)


def printed_reader() -> str:
    """The Python block of the guide, as a reader copies it."""
    guide = README.read_text(encoding="utf-8")
    section = guide[guide.index("## Subscribing from outside Pitlane") :]
    [code] = re.findall(r"```python\n(.*?)```", section, re.DOTALL)[:1]
    return code


def run_reader(nats_url: str) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-c", printed_reader()],
        env={**os.environ, "NATS_URL": nats_url},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout.splitlines()


def visits() -> list[Envelope[Any]]:
    """Two work orders of two branches, each opened then completed, interleaved as they happened."""
    envelopes: list[Envelope[Any]] = []
    for number, branch in enumerate(("b1", "b2")):
        order = f"wo-{number}"
        opened = work_order_opened(order, f"c{number}", f"v{number}")
        envelopes.append(
            Envelope.new(
                opened,
                chain_id="default",
                branch_id=branch,
                aggregate_id=order,
                aggregate_version=1,
                actor=Actor.service("workorder"),
                occurred_at=START + timedelta(hours=number),
            )
        )
    for number, branch in enumerate(("b1", "b2")):
        order = f"wo-{number}"
        completed_at = START + timedelta(hours=3 + number)
        completed = work_order_completed(
            order,
            f"c{number}",
            f"v{number}",
            branch_id=branch,
            completed_at=completed_at,
            total_fen=40_000 + number,
        )
        envelopes.append(
            Envelope.new(
                completed,
                chain_id="default",
                branch_id=branch,
                aggregate_id=order,
                aggregate_version=2,
                actor=Actor.service("workorder"),
                occurred_at=completed_at,
            )
        )
    return envelopes


async def test_the_printed_reader_replays_every_completed_visit_in_order_and_resumes_where_it_acked(
    nats_url: str,
) -> None:
    assert SUBSCRIBER_EXAMPLE in README.read_text(
        encoding="utf-8"
    )  # the committed guide is the generated one
    connection = await nats.connect(nats_url)
    try:
        await declare_stream(connection.jetstream(), service_stream("workorder"))
    finally:
        await connection.close()
    history = visits()
    await publish_envelopes(nats_url, history)

    completions = [envelope for envelope in history if envelope.event_type == "workorder.WorkOrderCompleted"]
    expected = [
        f"{e.aggregate_id} 2 {e.data.completed_at.isoformat().replace('+00:00', 'Z')} {e.data.paid_fen}"
        for e in completions
    ]
    assert run_reader(nats_url) == expected  # only completions, from the first, in the stream's order

    # Run again: the durable consumer remembers the acks, so only what came since is read.
    later = work_order_completed(
        "wo-9", "c9", "v9", branch_id="b1", completed_at=START + timedelta(days=1), total_fen=9_900
    )
    envelope = Envelope.new(
        later,
        chain_id="default",
        branch_id="b1",
        aggregate_id="wo-9",
        aggregate_version=2,
        actor=Actor.service("workorder"),
        occurred_at=later.completed_at,
    )
    await publish_envelopes(nats_url, [envelope])
    assert run_reader(nats_url) == [f"wo-9 2 2026-03-02T02:00:00Z {9_900}"]
