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

Besides the generated cases, every operation meets the inputs that once made our services fail (a sweep,
`HOSTILE_INPUTS`): the richest valid case schemathesis drew for it is sent again with one value at a time
replaced — each path, query and header parameter and each leaf of a JSON body — by a NUL byte, an integer
past PostgreSQL's bigint, a date at the calendar's edge, a branch id that is no NATS subject token, a
`false` where a number goes, a `0` where a date goes. The same checks hold for each answer (above all: no
5xx). `known_path_parameters` (e.g. `{"branch_id": "b1"}`) puts records the fixture made into the swept
cases' paths, so the hostile values reach the handlers instead of a 404 or a 403.

Generation is derandomised: the same code gets the same cases on every run, so a failure reproduces and a
green run stays green. schemathesis comes with the workspace's dev dependency group.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import socket
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
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

HUGE_INT = 2**63  # one past PostgreSQL's bigint
# Each kind of input that made a service answer 500 once, by where it is sent. Header values go through the
# client's own checks, so they carry no control characters.
_EDGE_DATES = ("9999-12-31", "9999-12-31T23:59:59+00:00", "0001-01-01T00:00:00+00:00")
_ODD_IDS = ("a.b", "*", ">", "a b")
HOSTILE_INPUTS: dict[str, tuple[Any, ...]] = {
    "path": ("a\x00b", str(HUGE_INT), "9" * 5000, *_EDGE_DATES, *_ODD_IDS),
    "query": ("a\x00b", str(HUGE_INT), str(-HUGE_INT - 1), "9" * 5000, *_EDGE_DATES, *_ODD_IDS),
    "header": (str(HUGE_INT), "9" * 5000, f'"{"9" * 5000}"', *_EDGE_DATES),
    "body": ("a\x00b", HUGE_INT, False, 0, *_EDGE_DATES, *_ODD_IDS[:3]),
}
# Leaves of one JSON body swept at most (a list's first item stands for the others, which repeat its fields).
MAX_SWEPT_BODY_LEAVES = 40
# Sweep requests of a read in flight at once.
SWEEP_CONCURRENCY = 4
SAFE_METHODS = frozenset({"GET", "HEAD"})
# Failures reported per operation by the sweep: the first few say what is wrong.
MAX_SWEEP_FAILURES_SHOWN = 5


async def assert_answers_as_documented(
    app: FastAPI,
    *,
    tokens: Sequence[str],
    max_examples: int = DEFAULT_MAX_EXAMPLES,
    known_path_parameters: Mapping[str, str] | None = None,
) -> None:
    """Fails with every operation of `app` that answers otherwise than its OpenAPI document says, for
    generated input and for the hostile inputs of the sweep."""
    if not tokens:
        raise ValueError("give at least one bearer token: without one every /v1 operation is only a 401")
    document = app.openapi()
    async with served_on_loopback(app) as base_url:
        failures = await asyncio.to_thread(
            _failures, document, base_url, list(tokens), max_examples, dict(known_path_parameters or {})
        )
    assert not failures, "operations that do not answer as documented:\n\n" + "\n\n".join(failures)


@contextlib.asynccontextmanager
async def served_on_loopback(app: FastAPI) -> AsyncIterator[str]:
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


def _failures(
    document: dict[str, Any],
    base_url: str,
    tokens: list[str],
    max_examples: int,
    known_path_parameters: dict[str, str],
) -> list[str]:
    schema = schemathesis.openapi.from_dict(document)
    failures: list[str] = []
    for result in schema.get_all_operations():
        if isinstance(result, Err):  # an operation the document cannot describe is a failure of its own
            failures.append(f"the document cannot be read: {result.err()}")
            continue
        operation = result.ok()
        richest: list[schemathesis.Case] = []
        for mode in (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE):
            try:
                _check_operation(operation, mode, base_url, tokens, max_examples, richest)
            except hypothesis.errors.Unsatisfiable:
                # Nothing to make invalid (no parameters, no body, e.g. /health): no negative cases exist.
                if mode is schemathesis.GenerationMode.POSITIVE:
                    raise
            # Hypothesis re-raises the failures of the minimal failing case; schemathesis groups them in a
            # BaseExceptionGroup, which `except Exception` would let through.
            except (Exception, FailureGroup) as error:
                failures.append(f"{operation.label} ({mode.value} input):\n{error}")
        if richest:
            failures.extend(_sweep(operation, richest[0], base_url, tokens[0], known_path_parameters))
    return failures


def _check_operation(
    operation: Any,
    mode: schemathesis.GenerationMode,
    base_url: str,
    tokens: list[str],
    max_examples: int,
    richest: list[schemathesis.Case],
) -> None:
    """Runs the generated cases; `richest` is left holding the valid case with the most values in it."""

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
        if mode is schemathesis.GenerationMode.POSITIVE and (
            not richest or _value_count(case) > _value_count(richest[0])
        ):
            richest[:] = [case]
        case.call_and_validate(
            base_url=base_url,
            headers={"Authorization": f"Bearer {token}"},
            checks=CHECKS,
            timeout=REQUEST_TIMEOUT_S,
        )

    check()


def _sweep(
    operation: Any,
    valid: schemathesis.Case,
    base_url: str,
    token: str,
    known_path_parameters: dict[str, str],
) -> list[str]:
    """The valid case sent again once per hostile value at each of its places; the failures, as text."""
    path_parameters = {
        name: known_path_parameters.get(name, value) for name, value in (valid.path_parameters or {}).items()
    }
    base = {
        "path": path_parameters,
        "query": dict(valid.query or {}),
        "header": dict(valid.headers or {}),
    }
    json_body = _is_json(valid.media_type) and valid.body is not schemathesis.core.NOT_SET

    def send(variant: tuple[str, tuple[Any, ...], Any]) -> str | None:
        location, place, value = variant
        parts = copy.deepcopy(base)
        body = copy.deepcopy(valid.body)
        if location == "body":
            body = _replaced(body, place, value)
        else:
            parts[location][place[0]] = value
        with_body: dict[str, Any] = (
            {
                "body": body,
                "media_type": valid.media_type,
                "multipart_content_types": valid.multipart_content_types,
            }
            if valid.body is not schemathesis.core.NOT_SET
            else {}
        )
        case = operation.Case(
            path_parameters=parts["path"], query=parts["query"], headers=parts["header"], **with_body
        )
        try:
            case.call_and_validate(
                base_url=base_url,
                headers={"Authorization": f"Bearer {token}"},
                checks=CHECKS,
                timeout=REQUEST_TIMEOUT_S,
            )
        except (Exception, FailureGroup) as error:
            shown = value if not isinstance(value, str) or len(value) < 40 else f"{value[:12]}…({len(value)})"
            return f"{location} {'.'.join(map(str, place))} = {shown!r}: {error}"
        return None

    variants = list(_hostile_variants(base, valid.body if json_body else None))
    # Requests wait on the server's database round trips: a few reads at a time keep both cores busy.
    # Commands go one at a time, as a client sends them: concurrent commands on one record are a test of
    # their own, and their outcome would depend on timing.
    reads = operation.method.upper() in SAFE_METHODS
    with ThreadPoolExecutor(SWEEP_CONCURRENCY if reads else 1) as pool:
        failures = [failure for failure in pool.map(send, variants) if failure is not None]
    if not failures:
        return []
    hidden = len(failures) - MAX_SWEEP_FAILURES_SHOWN
    more = [f"… and {hidden} more"] if hidden > 0 else []
    return [f"{operation.label} (hostile input):\n" + "\n".join(failures[:MAX_SWEEP_FAILURES_SHOWN] + more)]


def _hostile_variants(
    parameters: dict[str, dict[str, Any]], body: Any
) -> Iterator[tuple[str, tuple[Any, ...], Any]]:
    for location, values in parameters.items():
        for name in values:
            for value in HOSTILE_INPUTS[location]:
                yield location, (name,), value
    if body is not None:
        first_items = [place for place, _ in _leaves(body) if not any(_later_item(part) for part in place)]
        for place in first_items[:MAX_SWEPT_BODY_LEAVES]:
            for value in HOSTILE_INPUTS["body"]:
                yield "body", place, value


def _later_item(part: Any) -> bool:
    return isinstance(part, int) and part > 0


def _is_json(media_type: str | None) -> bool:
    return media_type is not None and (media_type == "application/json" or media_type.endswith("+json"))


def _value_count(case: schemathesis.Case) -> int:
    body = case.body if _is_json(case.media_type) else None
    return (
        len(case.path_parameters or {})
        + len(case.query or {})
        + len(case.headers or {})
        + sum(1 for _ in _leaves(body))
    )


def _leaves(value: Any, place: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], Any]]:
    """Every scalar in a JSON value with the keys and indexes that lead to it."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _leaves(item, (*place, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _leaves(item, (*place, index))
    elif place:
        yield place, value
    elif value is not None and value is not schemathesis.core.NOT_SET:
        yield place, value


def _replaced(value: Any, place: tuple[Any, ...], new: Any) -> Any:
    if not place:
        return new
    value[place[0]] = _replaced(value[place[0]], place[1:], new)
    return value
