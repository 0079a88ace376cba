"""notification's pure rules, without servers: quiet hours, the contact-frequency limit, channel fallback,
SMS segments and the opt-out, NPS groups and the survey's timing."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from pitlane_events.types import Channel
from pitlane_notification.domain import sms
from pitlane_notification.domain.courtesy import FrequencyLimit, QuietHours, channels_after, send_time
from pitlane_notification.domain.surveys import NpsGroup, SurveyPolicy, nps_group

SHANGHAI = ZoneInfo("Asia/Shanghai")
URUMQI_STYLE = ZoneInfo("Asia/Urumqi")  # UTC+6: a branch whose clock is not the chain's


def local(day: int, hour: int, minute: int = 0, zone: ZoneInfo = SHANGHAI) -> datetime:
    return datetime(2026, 12, day, hour, minute, tzinfo=zone)


@pytest.mark.parametrize(
    ("due", "released"),
    [
        (local(1, 21, 0), local(2, 8)),  # the first minute of the night
        (local(1, 23, 59), local(2, 8)),
        (local(2, 0, 0), local(2, 8)),  # after midnight: this morning, not tomorrow's
        (local(2, 7, 59), local(2, 8)),
    ],
)
def test_a_message_due_in_the_night_waits_for_eight_in_the_morning(due: datetime, released: datetime) -> None:
    assert QuietHours().release_at(due.astimezone(UTC), SHANGHAI) == released.astimezone(UTC)
    assert send_time(due.astimezone(UTC), Channel.SMS, QuietHours(), SHANGHAI) == released.astimezone(UTC)


@pytest.mark.parametrize("due", [local(1, 8, 0), local(1, 12, 0), local(1, 20, 59)])
def test_a_message_due_in_the_day_goes_at_once(due: datetime) -> None:
    assert QuietHours().release_at(due.astimezone(UTC), SHANGHAI) is None
    assert send_time(due, Channel.WECHAT, QuietHours(), SHANGHAI) == due


def test_quiet_hours_follow_the_branch_clock_and_spare_e_mail() -> None:
    due = datetime(2026, 12, 1, 14, 30, tzinfo=UTC)  # 22:30 in Shanghai, 20:30 at a UTC+6 branch
    assert QuietHours().release_at(due, SHANGHAI) is not None
    assert QuietHours().release_at(due, URUMQI_STYLE) is None
    assert send_time(due, Channel.EMAIL, QuietHours(), SHANGHAI) == due


def test_quiet_hours_within_one_day_and_a_window_of_nothing() -> None:
    lunch = QuietHours(start=time(12, 0), end=time(13, 30))
    assert lunch.covers(time(12, 0)) and lunch.covers(time(13, 29)) and not lunch.covers(time(13, 30))
    assert not lunch.covers(time(23, 0))
    assert lunch.release_at(local(1, 12, 10), SHANGHAI) == local(1, 13, 30).astimezone(UTC)
    with pytest.raises(ValueError, match="same time"):
        QuietHours(start=time(9), end=time(9))


def test_the_frequency_limit_counts_contacts_inside_its_window_only() -> None:
    now = datetime(2026, 12, 31, tzinfo=UTC)
    limit = FrequencyLimit(max_contacts=1, window=timedelta(days=30))
    assert limit.allows([], now)
    assert not limit.allows([now - timedelta(days=29, hours=23)], now)
    assert limit.allows([now - timedelta(days=30)], now)
    assert FrequencyLimit(max_contacts=2).allows([now - timedelta(days=1)], now)
    assert not limit.allows([now + timedelta(hours=9)], now)  # one queued for the morning counts already


def test_channels_fall_back_in_order_and_never_back() -> None:
    assert channels_after(Channel.WECHAT) == (Channel.SMS, Channel.EMAIL)
    assert channels_after(Channel.SMS) == (Channel.EMAIL,)
    assert channels_after(Channel.EMAIL) == ()
    assert channels_after(Channel.SMS, (Channel.SMS, Channel.WECHAT)) == (Channel.WECHAT,)


@pytest.mark.parametrize(
    ("length", "segments"), [(1, 1), (70, 1), (71, 2), (134, 2), (135, 3), (201, 3), (202, 4)]
)
def test_sms_segments_are_70_characters_then_67_per_part(length: int, segments: int) -> None:
    assert sms.segments("好" * length) == segments


def test_the_signature_counts_toward_the_segments() -> None:
    text = "a" * 65
    assert sms.segments(text) == 1
    assert sms.segments(sms.with_signature("车友汽修", text)) == 2  # 【车友汽修】 adds six characters


def test_the_opt_out_is_added_once() -> None:
    assert sms.with_opt_out("周末特惠 ") == "周末特惠 回T退订"
    assert sms.with_opt_out("周末特惠 回T退订") == "周末特惠 回T退订"


@pytest.mark.parametrize("reply", ["T", "t", " TD ", "ｔｄ", "退订", "N"])
def test_opt_out_replies_in_any_width_or_case(reply: str) -> None:
    assert sms.is_opt_out_reply(reply)


@pytest.mark.parametrize("reply", ["好的", "TDD", "明天到店", "", "不退订"])
def test_other_replies_are_not_opt_outs(reply: str) -> None:
    assert not sms.is_opt_out_reply(reply)


@pytest.mark.parametrize(
    ("score", "group"),
    [
        (0, NpsGroup.DETRACTOR),
        (6, NpsGroup.DETRACTOR),
        (7, NpsGroup.PASSIVE),
        (8, NpsGroup.PASSIVE),
        (9, NpsGroup.PROMOTER),
        (10, NpsGroup.PROMOTER),
    ],
)
def test_nps_groups(score: int, group: NpsGroup) -> None:
    assert nps_group(score) is group


@pytest.mark.parametrize("score", [-1, 11])
def test_a_score_outside_0_to_10_is_refused(score: int) -> None:
    with pytest.raises(ValueError):
        nps_group(score)


def test_the_survey_timing() -> None:
    completed = datetime(2026, 12, 1, 2, tzinfo=UTC)
    policy = SurveyPolicy()
    sent = policy.send_at(completed)
    assert sent == completed + timedelta(hours=2)
    assert policy.expires_at(sent) == sent + timedelta(days=7)
    with pytest.raises(ValueError, match="48 to 72"):
        SurveyPolicy(remind_after=timedelta(hours=24))
    with pytest.raises(ValueError, match="48 to 72"):
        SurveyPolicy(remind_after=timedelta(hours=73))
    with pytest.raises(ValueError, match="still accept answers"):
        SurveyPolicy(remind_after=timedelta(hours=72), valid_for=timedelta(hours=72))
