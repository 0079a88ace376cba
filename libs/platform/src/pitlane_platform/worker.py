"""`python -m pitlane_platform.worker <package.module:create_app>`: a service's background work alone — its
relay and consumers — without HTTP, for deployments that run the API in processes of its own
(`<PREFIX>RUN_BACKGROUND=false` there). The app factory builds the service as always; only its lifespan
(the ServiceRuntime) is run, until SIGTERM or SIGINT.
"""

from __future__ import annotations

import asyncio
import importlib
import signal
import sys
from typing import Any


def load_factory(target: str) -> Any:
    module_name, _, attribute = target.partition(":")
    if not attribute:
        raise SystemExit(f"give the app factory as package.module:function, not {target!r}")
    return getattr(importlib.import_module(module_name), attribute)


async def run(target: str) -> None:
    app = load_factory(target)()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with app.router.lifespan_context(app):
        await stop.wait()


def main() -> None:
    if len(sys.argv) != 2:
        raise SystemExit(__doc__.splitlines()[0])
    asyncio.run(run(sys.argv[1]))


if __name__ == "__main__":
    main()
