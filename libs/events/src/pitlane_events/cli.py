"""`pitlane-events`: regenerate or check the committed schemas and the event catalog.

    pitlane-events schemas --write | --check
    pitlane-events catalog --write | --check

`--check` exits 1 and lists what differs; CI runs it so the committed files never drift from the code.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pitlane_events  # noqa: F401  (registers every event)
from pitlane_events.catalog import CATALOG_DIR, stale_catalog, write_catalog
from pitlane_events.schemas import SCHEMA_DIR, check_schemas, write_schemas


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "schemas":
        return _schemas(args.dir or SCHEMA_DIR, write=args.write)
    return _catalog(args.dir or CATALOG_DIR, write=args.write)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pitlane-events", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    for name, help_text in (
        ("schemas", "the JSON Schema of every (event type, version) under libs/events/schemas"),
        ("catalog", "the AsyncAPI document and README under docs/events"),
    ):
        command = commands.add_parser(name, help=help_text)
        mode = command.add_mutually_exclusive_group(required=True)
        mode.add_argument("--write", action="store_true", help="regenerate the files from the code")
        mode.add_argument("--check", action="store_true", help="exit 1 if the files differ from the code")
        command.add_argument("--dir", type=Path, help="directory to use instead of the repository's")
    return parser


def _schemas(directory: Path, *, write: bool) -> int:
    report = check_schemas(directory)
    if write:
        # Writing over a breaking change is allowed (the diff gets reviewed), but never silently.
        for finding in report.breaking:
            print(f"warning: breaking change: {finding}", file=sys.stderr)
        for path in report.orphaned:
            print(f"warning: orphaned schema, its model is gone: {path}", file=sys.stderr)
        for path in write_schemas(directory):
            print(f"wrote {path}")
        return 0
    for line in report.lines():
        print(line)
    if not report.ok:
        print(f"schemas in {directory} differ from the code", file=sys.stderr)
        return 1
    return 0


def _catalog(directory: Path, *, write: bool) -> int:
    if write:
        for name in write_catalog(directory):
            print(f"wrote {directory / name}")
        return 0
    stale = stale_catalog(directory)
    for name in stale:
        print(f"stale catalog file (run `make catalog`): {directory / name}")
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
