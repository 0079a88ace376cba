"""When a message may reach a customer: quiet hours at the branch, the contact-frequency limit, and the
order in which channels are tried. Pure rules; the service layer feeds them what the database knows."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from pitlane_events.types import Channel

# SMS and WeChat buzz a phone: they wait out the night. E-mail waits in a mailbox and goes at once.
INTRUSIVE_CHANNELS = frozenset({Channel.SMS, Channel.WECHAT})

# The order channels are tried in, and fallen back along (a spent WeChat allowance, a refused send, a
# number at its provider's daily cap): WeChat is free and rich, SMS reaches every phone, e-mail is last.
FALLBACK_ORDER: tuple[Channel, ...] = (Channel.WECHAT, Channel.SMS, Channel.EMAIL)


@dataclass(frozen=True)
class QuietHours:
    """A nightly window [start, end) on the branch's local clock; end before start means it spans midnight."""

    start: time = time(21, 0)
    end: time = time(8, 0)

    def __post_init__(self) -> None:
        if self.start == self.end:
            raise ValueError("quiet hours must not start and end at the same time")

    def covers(self, local: time) -> bool:
        if self.start < self.end:
            return self.start <= local < self.end
        return local >= self.start or local < self.end

    def release_at(self, at: datetime, zone: ZoneInfo) -> datetime | None:
        """The instant (UTC) a message due `at` may go out when `at` falls in the quiet hours, else None:
        the next `end` on the local clock."""
        local = at.astimezone(zone)
        if not self.covers(local.time().replace(tzinfo=None)):
            return None
        release = datetime.combine(local.date(), self.end, tzinfo=zone)
        if release <= local:
            release = datetime.combine(local.date() + timedelta(days=1), self.end, tzinfo=zone)
        return release.astimezone(UTC)


def send_time(due: datetime, channel: Channel, quiet: QuietHours, zone: ZoneInfo) -> datetime:
    """When a message due at `due` on `channel` goes out: at once, or when the branch's night is over."""
    if channel not in INTRUSIVE_CHANNELS:
        return due
    return quiet.release_at(due, zone) or due


@dataclass(frozen=True)
class FrequencyLimit:
    """At most `max_contacts` surveys and marketing messages per customer within `window` (service messages
    about the customer's own car are never limited)."""

    max_contacts: int = 1
    window: timedelta = timedelta(days=30)

    def allows(self, previous: Sequence[datetime], now: datetime) -> bool:
        """`previous`: when the customer's earlier limited messages went, or will go (one queued for the end
        of the night counts already)."""
        recent = [at for at in previous if at > now - self.window]
        return len(recent) < self.max_contacts


def channels_after(channel: Channel, order: Sequence[Channel] = FALLBACK_ORDER) -> tuple[Channel, ...]:
    """The channels to fall back to after `channel`, in order."""
    if channel not in order:
        return ()
    return tuple(order[order.index(channel) + 1 :])
