"""The event catalog's AsyncAPI document, generated from the code, passes the AsyncAPI Initiative's own parser
(`@asyncapi/parser` from npm, installed by `make sync` from tests/contract/asyncapi/package-lock.json): no
diagnostic of error severity. A copy broken in four places fails it at each of them, so the check is real."""

from __future__ import annotations

import json
import shutil
import subprocess
from copy import deepcopy
from pathlib import Path
from typing import Any

import pytest

from pitlane_events.catalog import ASYNCAPI_FILE, catalog_files

CHECK_DIR = Path(__file__).parent / "asyncapi"
VALIDATE = CHECK_DIR / "validate.mjs"
ERROR = 0  # Spectral's DiagnosticSeverity.Error


def broken(document: dict[str, Any]) -> dict[str, Any]:
    """The document with a dangling reference, a mistyped address, an invalid schema type and no version."""
    copy = deepcopy(document)
    operation = copy["operations"][next(iter(copy["operations"]))]
    operation["channel"] = {"$ref": "#/channels/nowhere"}
    copy["channels"][next(iter(copy["channels"]))]["address"] = 5
    copy["components"]["schemas"]["LineItem"]["properties"]["quantity"] = {"type": "decimal"}
    del copy["info"]["version"]
    return copy


@pytest.fixture(scope="module")
def diagnostics(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[dict[str, Any]]]:
    """The parser's diagnostics of the generated document and of its broken copy, from one run of node."""
    node = shutil.which("node")
    if node is None or not (CHECK_DIR / "node_modules" / "@asyncapi" / "parser").is_dir():
        pytest.fail("the AsyncAPI parser is not installed: install node and npm, then run `make sync`")
    generated = json.loads(catalog_files()[ASYNCAPI_FILE])
    directory = tmp_path_factory.mktemp("asyncapi")
    files = {"generated": generated, "broken": broken(generated)}
    for name, document in files.items():
        (directory / f"{name}.json").write_text(json.dumps(document), encoding="utf-8")
    run = subprocess.run(
        [node, str(VALIDATE), *(str(directory / f"{name}.json") for name in files)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert run.returncode in (0, 1), run.stderr
    report = json.loads(run.stdout)
    return {name: report[str(directory / f"{name}.json")] for name in files}


def errors(found: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    return [
        (d["code"], "/".join(str(part) for part in d["path"]), d["message"])
        for d in found
        if d["severity"] == ERROR
    ]


def test_the_generated_asyncapi_document_passes_the_asyncapi_parser(
    diagnostics: dict[str, list[dict[str, Any]]],
) -> None:
    assert errors(diagnostics["generated"]) == []


def test_a_broken_copy_fails_the_parser_at_each_break(diagnostics: dict[str, list[dict[str, Any]]]) -> None:
    document = json.loads(catalog_files()[ASYNCAPI_FILE])
    operation, channel = next(iter(document["operations"])), next(iter(document["channels"]))

    found = errors(diagnostics["broken"])

    paths = {path for _, path, _ in found}
    assert (
        "invalid-ref",
        f"operations/{operation}/channel/$ref",
        "'#/channels/nowhere' does not exist",
    ) in found
    assert f"channels/{channel}/address" in paths
    assert "components/schemas/LineItem/properties/quantity/type" in paths
    assert any(path == "info" and "version" in message for _, path, message in found)
