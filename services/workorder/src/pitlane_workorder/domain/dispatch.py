"""Dispatch suggestions (系统派工): technicians ranked for one work order. The advisor still chooses; the
ranking shown is recorded with the assignment (TechnicianAssigned.suggestion).

Order: technicians at work now first (on shift, or the branch keeps no shifts for the day), then by how many
of the kinds of work the order needs they can do, by fewest orders they are working on, and by most time left
on their shift (a two-hour job goes to whoever is still there in two hours); ties by id, so one state of the
branch gives one ranking.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass

from pitlane_events.types import LineCategory
from pitlane_events.workorder import SuggestedTechnician

MAX_SUGGESTED = 10


@dataclass(frozen=True)
class Candidate:
    technician_id: str
    skills: frozenset[LineCategory]
    open_orders: int
    # None: no shift recorded for the branch that day (shifts not kept); 0: off shift, on leave or gone home.
    minutes_left_on_shift: int | None
    on_shift: bool = True


def rank(
    candidates: Iterable[Candidate], needed: Collection[LineCategory]
) -> tuple[SuggestedTechnician, ...]:
    """The best MAX_SUGGESTED candidates for work of the `needed` kinds, best first."""
    ordered = sorted(
        candidates,
        key=lambda candidate: (
            not candidate.on_shift,
            -len(candidate.skills & set(needed)),
            candidate.open_orders,
            -(candidate.minutes_left_on_shift or 0),
            candidate.technician_id,
        ),
    )
    return tuple(
        SuggestedTechnician(
            technician_id=candidate.technician_id,
            skills_matched=len(candidate.skills & set(needed)),
            open_orders=candidate.open_orders,
            minutes_left_on_shift=candidate.minutes_left_on_shift,
        )
        for candidate in ordered[:MAX_SUGGESTED]
    )
