"""A relay in its own process, so a test can SIGKILL it at the worst moment."""

from __future__ import annotations

import argparse
import asyncio
import signal

from pitlane_platform.messaging.connection import connect_nats
from pitlane_platform.messaging.relay import OutboxRelay, RelayConfig


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--nats-url", required=True)
    parser.add_argument("--service", required=True)
    args = parser.parse_args()
    nc = await connect_nats(args.nats_url, name="relay-process")
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    relay = OutboxRelay(
        RelayConfig(service=args.service, database_url=args.database_url, poll_interval_s=0.2), nc
    )
    print("relay started", flush=True)
    await relay.run(stop)
    await nc.drain()


if __name__ == "__main__":
    asyncio.run(main())
