"""`pitlane-events schemas|catalog --write|--check` against a scratch directory."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pitlane_events.cli import main


def test_written_schemas_check_clean(tmp_path: Path) -> None:
    assert main(["schemas", "--write", "--dir", str(tmp_path)]) == 0

    assert main(["schemas", "--check", "--dir", str(tmp_path)]) == 0
    assert (tmp_path / "envelope.json").read_text("utf-8").endswith("}\n")
    assert (tmp_path / "workorder" / "WorkOrderCompleted.v1.json").exists()


def test_check_lists_breaking_and_missing_schemas(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    main(["schemas", "--write", "--dir", str(tmp_path)])
    completed = tmp_path / "workorder" / "WorkOrderCompleted.v1.json"
    committed = json.loads(completed.read_text("utf-8"))
    committed["properties"]["paid_fen"]["type"] = "string"
    completed.write_text(json.dumps(committed), "utf-8")
    (tmp_path / "reminder" / "ReminderDue.v1.json").unlink()
    capsys.readouterr()

    assert main(["schemas", "--check", "--dir", str(tmp_path)]) == 1

    output = capsys.readouterr().out
    assert "breaking change: workorder.WorkOrderCompleted v1 $.paid_fen: type changed" in output
    assert "missing schema (run `make schemas`): reminder/ReminderDue.v1.json" in output


def test_catalog_check_fails_until_written(tmp_path: Path) -> None:
    assert main(["catalog", "--check", "--dir", str(tmp_path)]) == 1

    assert main(["catalog", "--write", "--dir", str(tmp_path)]) == 0
    assert main(["catalog", "--check", "--dir", str(tmp_path)]) == 0
