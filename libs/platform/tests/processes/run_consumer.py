"""The probe consumer in its own process; `--die-after-commit` SIGKILLs it right after its first commit,
before the ack, which is the crash the exactly-once guarantee must survive.

`--doomed-km K` makes the handler meet the reading K with `--on-doomed`: `die` (SIGKILL itself: a crash on
that message, each time), `fail` (raise, each time) or `fail-then-die` (raise the first time in this process,
die on the retry); each run on the reading first appends a line to `--runs-file`, which survives the kill."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pitlane_events.customer_profile import VehicleMileageRecorded
from pitlane_platform.clock import SystemClock
from pitlane_platform.db import create_engine, session_factory
from pitlane_platform.messaging.connection import connect_nats
from pitlane_platform.messaging.consumer import Consumer, ConsumerRunner, HandlerContext
from pitlane_platform.telemetry import setup_telemetry
from platform_flow import probe_consumer


def doom(consumer: Consumer, km: int, behaviour: str, runs_file: Path) -> None:
    handler = consumer.handlers[VehicleMileageRecorded.event_type]
    runs_here = 0

    async def doomed(ctx: HandlerContext, event: VehicleMileageRecorded) -> None:
        nonlocal runs_here
        if event.mileage_km != km:
            return await handler(ctx, event)
        runs_here += 1
        with runs_file.open("a") as runs:
            runs.write(f"pid {os.getpid()} attempt {ctx.envelope.event_id}\n")
        if behaviour == "die" or (behaviour == "fail-then-die" and runs_here > 1):
            os.kill(os.getpid(), signal.SIGKILL)
        raise ValueError(f"the doomed reading (run {runs_here} in this process)")

    consumer.handlers[VehicleMileageRecorded.event_type] = doomed


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--nats-url", required=True)
    parser.add_argument("--ack-wait", type=float, default=30.0)
    parser.add_argument("--die-after-commit", action="store_true")
    parser.add_argument("--max-deliver", type=int, default=5)
    parser.add_argument("--backoff", type=float, default=1.0)
    parser.add_argument("--doomed-km", type=int)
    parser.add_argument("--on-doomed", choices=["die", "fail", "fail-then-die"], default="die")
    parser.add_argument("--runs-file", type=Path)
    args = parser.parse_args()
    setup_telemetry("analytics")  # exports to OTLP when OTEL_EXPORTER_OTLP_ENDPOINT is set by the test
    engine = create_engine(args.database_url)
    nc = await connect_nats(args.nats_url, name="consumer-process")
    hooks = (
        [lambda _consumer, _envelope: os.kill(os.getpid(), signal.SIGKILL)] if args.die_after_commit else []
    )
    consumer = probe_consumer(
        ack_wait_s=args.ack_wait, max_deliver=args.max_deliver, backoff_s=(args.backoff,)
    )
    if args.doomed_km is not None:
        assert args.runs_file is not None, "--doomed-km needs --runs-file"
        doom(consumer, args.doomed_km, args.on_doomed, args.runs_file)
    runner = ConsumerRunner(
        [consumer],
        js=nc.jetstream(),
        sessions=session_factory(engine),
        clock=SystemClock(),
        after_commit=hooks,
    )
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    print("consumer started", flush=True)
    await runner.run(stop)
    await nc.drain()
    await engine.dispose()


if __name__ == "__main__":
    asyncio.run(main())
