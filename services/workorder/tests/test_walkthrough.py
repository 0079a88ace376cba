"""Runs the shop day of docs/services/workorder.md as written: every fenced `http` block is sent to the app
(real PostgreSQL and NATS), its answer must have the status the line after the block gives, and the values
that line keeps (`keep <field> as {{name}}`) fill the placeholders of the later requests."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workorder_harness import Harness

# Found upwards, not at a fixed depth: mutation testing runs a copy of these tests from another directory.
WALKTHROUGH = next(
    folder / "docs" / "services" / "workorder.md"
    for folder in Path(__file__).resolve().parents
    if (folder / "docs" / "services" / "workorder.md").is_file()
)
SECTION = "## A shop day, request by request"
STEP = re.compile(r"```http\n(?P<request>.*?)```\n→ (?P<status>\d{3})(?P<outcome>[^\n]*)", re.DOTALL)
KEEP = re.compile(r"keep (?P<field>[\w.]+) as \{\{(?P<name>\w+)\}\}")
PLACEHOLDER = re.compile(r"\{\{(\w+)\}\}")
TOKENS = {"manager_token": "max", "advisor_token": "amy", "technician_token": "tom", "finance_token": "fay"}


@dataclass
class Step:
    request: str
    status: int
    keep: dict[str, str]  # placeholder name → dotted field of the JSON answer


def steps() -> list[Step]:
    text = WALKTHROUGH.read_text(encoding="utf-8")
    section = text[text.index(SECTION) :]
    section = section[: section.index("\n## ", len(SECTION))]
    found = [
        Step(
            match["request"],
            int(match["status"]),
            {keep["name"]: keep["field"] for keep in KEEP.finditer(match["outcome"])},
        )
        for match in STEP.finditer(section)
    ]
    # Every request block must be matched with its status line; a block without one would be skipped.
    assert len(found) == section.count("```http"), "an http block lacks its '→ <status>' line"
    return found


def field_of(answer: Any, dotted: str) -> str:
    for part in dotted.split("."):
        answer = answer[int(part)] if isinstance(answer, list) else answer[part]
    return str(answer)


async def test_the_shop_day_in_the_docs_runs_as_written(harness: Harness):
    values = {
        name: harness.auth(name.removesuffix("_token"), sub=sub)["Authorization"].removeprefix("Bearer ")
        for name, sub in TOKENS.items()
    }
    walk = steps()
    assert len(walk) > 15
    for number, step in enumerate(walk, 1):
        request = PLACEHOLDER.sub(lambda placeholder: values[placeholder[1]], step.request)
        head, _, body = request.partition("\n\n")
        request_line, *header_lines = head.splitlines()
        method, target = request_line.split(" ", 1)
        headers = dict(line.split(": ", 1) for line in header_lines)
        content = body.rstrip("\n").encode()
        if headers.get("Content-Type") == "application/json":
            json.loads(content)  # the docs show valid JSON, not an abbreviation
        answer = await harness.client.request(method, target, headers=headers, content=content)
        assert answer.status_code == step.status, f"step {number}: {request_line}\n{answer.text}"
        for name, field in step.keep.items():
            values[name] = field_of(answer.json(), field)

    # The last step is the customer's page after hand-over: it shows the settled bill.
    assert "¥600.00" in answer.text and "WeChat Pay" in answer.text
