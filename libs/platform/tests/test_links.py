"""Signed tokens, without servers: what an attribution token proves, until when, and what it never passes for.
A booking answers both refusals as a 422 on the same field, so the message is what tells an expired campaign
link from one this chain never signed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from pitlane_platform.errors import InvalidInputError
from pitlane_platform.security.links import (
    Attribution,
    AttributionKind,
    CustomerLink,
    sign_attribution,
    sign_link,
    verify_attribution,
)

SECRET = "workorder-test-link-secret-of-32-bytes-or-more"
NOW = datetime(2026, 11, 16, 0, 0, tzinfo=UTC)
FIELD = "body.attribution"
CAMPAIGN = Attribution(AttributionKind.CAMPAIGN, "double11", NOW + timedelta(days=90))
NOT_SIGNED = "is not an attribution token this chain signed"


def refusal(token: str, now: datetime = NOW) -> tuple[str, str]:
    with pytest.raises(InvalidInputError) as refused:
        verify_attribution(SECRET, token, now, field=FIELD)
    return refused.value.field, refused.value.message


def test_an_attribution_token_names_its_campaign_or_reminder_until_it_expires():
    token = sign_attribution(SECRET, CAMPAIGN)
    assert verify_attribution(SECRET, token, NOW, field=FIELD) == CAMPAIGN
    last_second = CAMPAIGN.expires_at - timedelta(seconds=1)
    assert verify_attribution(SECRET, token, last_second, field=FIELD) == CAMPAIGN
    assert refusal(token, CAMPAIGN.expires_at) == (FIELD, "the campaign's or reminder's link has expired")

    reminder = Attribution(AttributionKind.REMINDER, "r-42", NOW + timedelta(days=1))
    assert verify_attribution(SECRET, sign_attribution(SECRET, reminder), NOW, field=FIELD) == reminder


def other_payload_same_signature() -> str:
    """The payload of a token for another campaign under the signature of the genuine one."""
    genuine = sign_attribution(SECRET, CAMPAIGN)
    other = sign_attribution(SECRET, Attribution(AttributionKind.CAMPAIGN, "free-car", CAMPAIGN.expires_at))
    return f"{other.partition('.')[0]}.{genuine.partition('.')[2]}"


@pytest.mark.parametrize(
    "token",
    [
        pytest.param(other_payload_same_signature(), id="altered payload"),
        pytest.param(sign_attribution("another-secret-of-32-bytes-or-more-x", CAMPAIGN), id="other secret"),
        pytest.param(
            sign_link(SECRET, CustomerLink("wo-1", "b1", NOW + timedelta(days=3))),
            id="a customer's page link",
        ),
        pytest.param("bm90LWpzb24.c2lnbmF0dXJl", id="junk"),
    ],
)
def test_a_token_this_chain_did_not_sign_for_attribution_is_refused_on_the_field(token: str):
    assert refusal(token) == (FIELD, NOT_SIGNED)
