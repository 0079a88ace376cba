"""The event catalog in docs/events is generated from the code; it must never be stale."""

import json

from pitlane_events import REGISTRY
from pitlane_events.catalog import CATALOG_DIR, catalog_files, stale_catalog


def test_committed_catalog_is_current() -> None:
    stale = stale_catalog(CATALOG_DIR)

    assert not stale, f"stale event catalog {stale}; run `make catalog` and commit docs/events"


def test_catalog_has_a_channel_per_subject_pattern() -> None:
    document = json.loads(catalog_files()["asyncapi.json"])
    addresses = {channel["address"] for channel in document["channels"].values()}

    assert document["asyncapi"] == "3.0.0"
    assert "workorder.{branch_id}.WorkOrderCompleted.v1" in addresses
    assert len(addresses) == len(list(REGISTRY.models()))
