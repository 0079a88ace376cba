"""When each event's command committed and when its effect committed, on one monotonic clock.

Everything runs in one process, so `time.monotonic()` read right after the writer's commit and right after
the consumer's effect commit (before its ack) gives the end-to-end latency of each event, for both paths alike.
"""

from __future__ import annotations

import asyncio
import time


class Timeline:
    def __init__(self) -> None:
        self.commands_committed: dict[str, float] = {}
        self.effects_committed: dict[str, float] = {}
        self._expected_effects = 0
        self._all_effects_committed = asyncio.Event()

    def reset(self) -> None:
        """Forget what was recorded so far (the warm-up) before measuring."""
        self.commands_committed.clear()
        self.effects_committed.clear()

    def command_committed(self, event_id: str) -> None:
        self.commands_committed[event_id] = time.monotonic()

    def effect_committed(self, event_id: str) -> None:
        self.effects_committed[event_id] = time.monotonic()
        if len(self.effects_committed) >= self._expected_effects:
            self._all_effects_committed.set()

    async def wait_for_effects(self, count: int, timeout_s: float) -> None:
        """Until `count` effects committed since the last reset; fails loudly if the pipeline stalls."""
        self._expected_effects = count
        self._all_effects_committed.clear()
        if len(self.effects_committed) >= count:
            return
        try:
            await asyncio.wait_for(self._all_effects_committed.wait(), timeout_s)
        except TimeoutError:
            raise RuntimeError(
                f"only {len(self.effects_committed)} of {count} effects committed within {timeout_s}s"
            ) from None

    def last_effect_committed(self) -> float:
        return max(self.effects_committed.values())

    def latencies_s(self) -> list[float]:
        return [
            self.effects_committed[event_id] - committed
            for event_id, committed in self.commands_committed.items()
            if event_id in self.effects_committed
        ]
