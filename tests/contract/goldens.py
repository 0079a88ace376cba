"""The golden payloads: envelopes as producers really wrote them, kept forever.

- `golden/<service>/<EventType>.v<N>.json`: version N as its producer writes it today, every field shown.
- `golden/<service>/<EventType>.v<N>.r<K>.json`: the earlier shapes of version N, oldest first (r1 is the
  first). Adding an optional field keeps the version, so payloads without it were published and stored and
  must stay readable: before adding one, copy the current file to the next `.r<K>.json`.
"""

from __future__ import annotations

import json
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pitlane_events.schemas import SCHEMA_DIR, schema_file

GOLDEN_DIR = Path(__file__).parent / "golden"
_NAME = re.compile(
    r"^(?P<service>[a-z][a-z0-9-]*)/(?P<name>[A-Z][A-Za-z0-9]*)\.v(?P<version>[1-9][0-9]*)"
    r"(\.r(?P<revision>[1-9][0-9]*))?\.json$"
)

Json = dict[str, Any]


@dataclass(frozen=True)
class Golden:
    relative_path: str
    event_type: str
    version: int
    revision: int | None
    """None for the current shape of the version; K for its K-th earlier shape."""
    body: Json

    @property
    def is_current(self) -> bool:
        return self.revision is None

    @property
    def current_path(self) -> str:
        """The file of this version's current shape."""
        return schema_file(self.event_type, self.version)


def load_goldens(directory: Path = GOLDEN_DIR) -> list[Golden]:
    """Every golden payload; a file named otherwise than above is an error."""
    goldens = []
    for path in sorted(directory.rglob("*.json")):
        relative_path = path.relative_to(directory).as_posix()
        match = _NAME.match(relative_path)
        if match is None:
            raise ValueError(f"golden/{relative_path}: not <service>/<EventType>.v<N>[.r<K>].json")
        revision = match["revision"]
        goldens.append(
            Golden(
                relative_path=relative_path,
                event_type=f"{match['service']}.{match['name']}",
                version=int(match["version"]),
                revision=int(revision) if revision else None,
                body=json.loads(path.read_text(encoding="utf-8")),
            )
        )
    return goldens


GOLDENS = load_goldens()


def goldens_of(event_type: str) -> list[Golden]:
    return [golden for golden in GOLDENS if golden.event_type == event_type]


def field_paths(value: Any, prefix: str = "") -> set[str]:
    """Every field path a JSON value shows (`line_items[*].name`)."""
    paths: set[str] = set()
    if isinstance(value, dict):
        for name, item in value.items():
            path = f"{prefix}.{name}" if prefix else name
            paths |= {path} | field_paths(item, path)
    elif isinstance(value, list):
        for item in value:
            paths |= field_paths(item, f"{prefix}[*]")
    return paths


def committed_schema(event_type: str, version: int) -> Json:
    return json.loads((SCHEMA_DIR / schema_file(event_type, version)).read_text(encoding="utf-8"))


def shapes_in_history(directory: Path = GOLDEN_DIR) -> dict[str, list[tuple[str, frozenset[str]]]] | None:
    """Every shape (the field paths of `data`) each golden file had in the commits of this checkout, keyed by
    its path under `directory`, newest first; None outside a git checkout."""
    try:
        log = _git(directory, "log", "--format=>%H", "--name-only", "--", ".").decode()
    except (OSError, subprocess.CalledProcessError):
        return None
    prefix = _git(directory, "rev-parse", "--show-prefix").decode().strip()
    pairs: list[tuple[str, str]] = []
    commit = ""
    for line in log.splitlines():
        if line.startswith(">"):
            commit = line[1:]
        elif line.endswith(".json"):
            pairs.append((commit, line))
    contents = _git(directory, "cat-file", "--batch", stdin="".join(f"{c}:{p}\n" for c, p in pairs).encode())
    shapes: dict[str, list[tuple[str, frozenset[str]]]] = {}
    offset = 0
    for commit, path in pairs:
        header_end = contents.index(b"\n", offset)
        header = contents[offset:header_end].split()
        offset = header_end + 1
        if header[-1] == b"missing":
            continue  # the commit deleted the file
        size = int(header[2])
        body = json.loads(contents[offset : offset + size])
        offset += size + 1
        shapes.setdefault(path.removeprefix(prefix), []).append(
            (commit, frozenset(field_paths(body["data"])))
        )
    return shapes


def _git(directory: Path, *args: str, stdin: bytes | None = None) -> bytes:
    return subprocess.run(
        ["git", *args], cwd=directory, input=stdin, capture_output=True, check=True, timeout=60
    ).stdout
