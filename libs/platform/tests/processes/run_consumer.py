"""The probe consumer in its own process; `--die-after-commit` SIGKILLs it right after its first commit,
before the ack, which is the crash the exactly-once guarantee must survive."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pitlane_platform.clock import SystemClock
from pitlane_platform.db import create_engine, session_factory
from pitlane_platform.messaging.connection import connect_nats
from pitlane_platform.messaging.consumer import ConsumerRunner
from pitlane_platform.telemetry import setup_telemetry
from platform_flow import probe_consumer


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--nats-url", required=True)
    parser.add_argument("--ack-wait", type=float, default=30.0)
    parser.add_argument("--die-after-commit", action="store_true")
    args = parser.parse_args()
    setup_telemetry("analytics")  # exports to OTLP when OTEL_EXPORTER_OTLP_ENDPOINT is set by the test
    engine = create_engine(args.database_url)
    nc = await connect_nats(args.nats_url, name="consumer-process")
    hooks = (
        [lambda _consumer, _envelope: os.kill(os.getpid(), signal.SIGKILL)] if args.die_after_commit else []
    )
    runner = ConsumerRunner(
        [probe_consumer(ack_wait_s=args.ack_wait)],
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
