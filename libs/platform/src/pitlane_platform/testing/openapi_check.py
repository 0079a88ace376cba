"""Does a service answer as its OpenAPI document says? Schemathesis over every operation of a built app.

```python
async def test_every_operation_answers_as_documented(service: Service) -> None:
    owner = mint_dev_token(service.settings, role="owner", branches=["*"], sub="openapi-owner")
    await assert_answers_as_documented(service.app, tokens=[owner])
```

The app must be running (its lifespan entered, as the service fixtures do) against the test's real servers.
It is served over real HTTP on a free loopback port, in the test's own event loop, while schemathesis —
whose client is blocking — drives it from a worker thread. Every operation gets `max_examples` cases of
valid input and as many of invalid input, each request with one of `tokens` (drawn per case, so several
roles share the examples instead of multiplying them). The test fails, listing each failing operation with
a reproducing `curl`, on any of:

- a server error (5xx);
- a status the operation's document does not declare;
- a content type other than the declared ones for that status;
- a body that breaks the declared schema, or a declared response header missing or malformed.

Generation is derandomised: the same code gets the same cases on every run, so a failure reproduces and a
green run stays green. schemathesis comes with the workspace's dev dependency group.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Sequence
from typing import Any

import hypothesis
import schemathesis
import uvicorn
from fastapi import FastAPI
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.core.result import Err
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]
# Per operation and generation mode: enough to meet each parameter's edges (schemathesis starts from the
# schema's boundaries and examples), few enough that a service of 20 operations is checked in well under a
# minute on two cores.
DEFAULT_MAX_EXAMPLES = 25
REQUEST_TIMEOUT_S = 30


async def assert_answers_as_documented(
    app: FastAPI,
    *,
    tokens: Sequence[str],
    max_examples: int = DEFAULT_MAX_EXAMPLES,
) -> None:
    """Fails with every operation of `app` that answers otherwise than its OpenAPI document says."""
    if not tokens:
        raise ValueError("give at least one bearer token: without one every /v1 operation is only a 401")
    document = app.openapi()
    async with _served(app) as base_url:
        failures = await asyncio.to_thread(_failures, document, base_url, list(tokens), max_examples)
    assert not failures, "operations that do not answer as documented:\n\n" + "\n\n".join(failures)


@contextlib.asynccontextmanager
async def _served(app: FastAPI) -> AsyncIterator[str]:
    """Serves the app on a free loopback port in this event loop (its lifespan belongs to the caller)."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    # log_config=None: the session's logging (JSON, ours) stays as it is.
    server = uvicorn.Server(uvicorn.Config(app, lifespan="off", log_config=None, access_log=False))
    serving = asyncio.create_task(server.serve(sockets=[listener]))
    try:
        while not server.started:
            if serving.done():
                serving.result()  # raises why the server did not start
            await asyncio.sleep(0.01)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await serving
        listener.close()


def _failures(document: dict[str, Any], base_url: str, tokens: list[str], max_examples: int) -> list[str]:
    schema = schemathesis.openapi.from_dict(document)
    failures: list[str] = []
    for result in schema.get_all_operations():
        if isinstance(result, Err):  # an operation the document cannot describe is a failure of its own
            failures.append(f"the document cannot be read: {result.err()}")
            continue
        operation = result.ok()
        for mode in (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE):
            try:
                _check_operation(operation, mode, base_url, tokens, max_examples)
            except hypothesis.errors.Unsatisfiable:
                # Nothing to make invalid (no parameters, no body, e.g. /health): no negative cases exist.
                if mode is schemathesis.GenerationMode.POSITIVE:
                    raise
            # Hypothesis re-raises the failures of the minimal failing case; schemathesis groups them in a
            # BaseExceptionGroup, which `except Exception` would let through.
            except (Exception, FailureGroup) as error:
                failures.append(f"{operation.label} ({mode.value} input):\n{error}")
    return failures


def _check_operation(
    operation: Any,
    mode: schemathesis.GenerationMode,
    base_url: str,
    tokens: list[str],
    max_examples: int,
) -> None:
    @hypothesis.settings(
        max_examples=max_examples,
        derandomize=True,
        database=None,  # nothing written into the working tree; derandomised runs need no replay store
        deadline=None,  # a request's time is the server's, not the generator's
        suppress_health_check=list(hypothesis.HealthCheck),
        phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate, hypothesis.Phase.shrink],
        print_blob=False,
    )
    @hypothesis.given(case=operation.as_strategy(generation_mode=mode), token=st.sampled_from(tokens))
    def check(case: schemathesis.Case, token: str) -> None:
        case.call_and_validate(
            base_url=base_url,
            headers={"Authorization": f"Bearer {token}"},
            checks=CHECKS,
            timeout=REQUEST_TIMEOUT_S,
        )

    check()
