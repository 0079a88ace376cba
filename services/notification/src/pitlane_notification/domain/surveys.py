"""The NPS survey's rules: who counts as promoter, passive or detractor; when a survey goes out, may be
reminded once and stops accepting answers."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum


class NpsGroup(StrEnum):
    PROMOTER = "promoter"  # 9–10
    PASSIVE = "passive"  # 7–8
    DETRACTOR = "detractor"  # 0–6: flagged for service recovery


def nps_group(score: int) -> NpsGroup:
    if not 0 <= score <= 10:
        raise ValueError("an NPS score is 0 to 10")
    if score >= 9:
        return NpsGroup.PROMOTER
    if score >= 7:
        return NpsGroup.PASSIVE
    return NpsGroup.DETRACTOR


@dataclass(frozen=True)
class SurveyPolicy:
    """Sent `delay` after the visit; one reminder `remind_after` the send if unanswered; the link accepts
    answers until `valid_for` after the send."""

    delay: timedelta = timedelta(hours=2)
    remind_after: timedelta = timedelta(hours=48)
    valid_for: timedelta = timedelta(days=7)

    def __post_init__(self) -> None:
        if not timedelta(hours=48) <= self.remind_after <= timedelta(hours=72):
            raise ValueError("the survey reminder goes 48 to 72 hours after the survey")
        if self.valid_for <= self.remind_after:
            raise ValueError("a survey must still accept answers when its reminder goes out")

    def send_at(self, completed_at: datetime) -> datetime:
        return completed_at + self.delay

    def expires_at(self, sent_at: datetime) -> datetime:
        return sent_at + self.valid_for
