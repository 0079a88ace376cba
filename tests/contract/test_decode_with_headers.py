"""Every golden payload — each version, each earlier shape of a version — reads the same with the headers its
producer sends beside it (`Pitlane-Event-Type`, `Pitlane-Schema-Version`: the consumers and the rebuild read
current events straight from the payload then) as without them."""

from __future__ import annotations

import json

import pytest
from goldens import GOLDENS, Golden

from pitlane_events import decode
from pitlane_events.codec import EVENT_TYPE_HEADER, SCHEMA_VERSION_HEADER


@pytest.mark.parametrize("golden", GOLDENS, ids=lambda golden: golden.relative_path)
def test_a_golden_payload_reads_the_same_with_its_headers(golden: Golden) -> None:
    payload = json.dumps(golden.body, ensure_ascii=False).encode()
    headers = {EVENT_TYPE_HEADER: golden.event_type, SCHEMA_VERSION_HEADER: str(golden.version)}

    assert decode(payload, headers=headers) == decode(payload)
