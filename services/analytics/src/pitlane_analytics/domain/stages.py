"""The stage on-time rate (KPI.md): per process stage, stages completed within their time limit ÷ stages
completed in the period, and the median time in stage; by the definition version the order ran under too.

Only stages the order's definition gave a time limit count. On time = done before the deadline: a stage that
takes its whole limit to the microsecond is late (its deadline timer fires at that instant, workorder ADR).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Hashable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from fractions import Fraction
from typing import TypeVar

from pitlane_analytics.domain.kpis import Rate, median
from pitlane_events.workorder import ProcessStage

K = TypeVar("K", bound=Hashable)


@dataclass(frozen=True)
class TimedPassage:
    stage: ProcessStage
    entered_at: datetime
    completed_at: datetime
    due_at: datetime

    @property
    def on_time(self) -> bool:
        return self.completed_at < self.due_at

    @property
    def seconds(self) -> Fraction:
        return Fraction((self.completed_at - self.entered_at) // timedelta(microseconds=1), 1_000_000)


@dataclass(frozen=True)
class StageFigures:
    on_time: Rate
    median_seconds: Fraction | None


def figures(passages: Iterable[tuple[K, TimedPassage]]) -> dict[K, StageFigures]:
    """The figures of each group of passages (`K`: the stage, or the stage and definition version)."""
    groups: dict[K, list[TimedPassage]] = defaultdict(list)
    for key, passage in passages:
        groups[key].append(passage)
    return {
        key: StageFigures(
            on_time=Rate(sum(passage.on_time for passage in group), len(group)),
            median_seconds=median(sorted(passage.seconds for passage in group)),
        )
        for key, group in groups.items()
    }
