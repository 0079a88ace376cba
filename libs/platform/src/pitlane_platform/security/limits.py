"""Abuse limits on requests, with the `limits` library's sliding-window counters in memory (ADR 12).

Two kinds, both applied by `http.create_app` in front of a route (no dependency level of their own):
- **per user** on the routes a service names (`UserLimit`, e.g. customer-profile's lookups and searches),
  counted per (route, user id) after the token is verified;
- **per client** on every route that demands no token (public booking, the customer's pages), counted per
  (route, client address) — `settings.public_rate_limit`.

A refused request is a 429 problem with `Retry-After`; a per-user refusal also calls the limit's
`on_refused` hook once per window per user and route, which is how a service publishes its alert event.
Counts live in each process's memory: N replicas allow N times the rate, and a restart forgets them.
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from limits import RateLimitItem
from limits.aio.storage import MemoryStorage
from limits.aio.strategies import SlidingWindowCounterRateLimiter
from starlette.types import ASGIApp, Receive, Scope, Send

from pitlane_platform.auth import PRINCIPAL_SCOPE_KEY, Principal
from pitlane_platform.errors import PitlaneError
from pitlane_platform.security.rates import parse_rate


class TooManyRequestsError(PitlaneError):
    """The caller went over a limit; `retry_after_s` says when the window lets it in again."""

    status = 429
    title = "Too many requests"

    def __init__(self, limit: RateLimitItem, retry_after_s: int) -> None:
        super().__init__(f"at most {limit} on this route; retry after {retry_after_s} s")
        self.retry_after_s = retry_after_s


@dataclass(frozen=True)
class LimitReached:
    """What an `on_refused` hook is told: who went over which limit of which route."""

    principal: Principal
    method: str
    route: str
    limit: RateLimitItem

    @property
    def window_s(self) -> int:
        return int(self.limit.get_expiry())


OnRefused = Callable[[LimitReached], Awaitable[None]]


@dataclass(frozen=True)
class UserLimit:
    """A per-user limit on one route: `rate` as `parse_rate` takes it (`30/minute;300/hour`)."""

    method: str
    path: str
    rate: str
    on_refused: OnRefused | None = None


class RequestLimiter:
    """The counts of one app: a sliding window per (kind, route, caller) for every rate given.

    Sliding-window counters, not moving windows: the moving window's memory storage keeps one entry per
    request and inserts each new one at the head of a list, so a generous limit (a busy front desk's) costs
    every request time in proportion to the requests of the last window; two counters per window cost the
    same whatever the rate, and still allow no burst of twice the rate at a window's edge."""

    def __init__(self) -> None:
        self._strategy = SlidingWindowCounterRateLimiter(MemoryStorage())

    async def refused(
        self, items: list[RateLimitItem], *identifiers: str
    ) -> tuple[RateLimitItem, int] | None:
        """Counts the request against each item; the first item it goes over and the seconds until that
        window has room again, or None when the request may pass."""
        for item in items:
            if not await self._strategy.hit(item, *identifiers):
                stats = await self._strategy.get_window_stats(item, *identifiers)
                return item, max(1, math.ceil(stats.reset_time - time.time()))
        return None

    async def first_refusal_in_window(self, item: RateLimitItem, *identifiers: str) -> bool:
        """True once per window of `item` for these identifiers: the alert is sent once, not per refusal."""
        once = type(item)(1, item.multiples, namespace="ALERT")
        return await self._strategy.hit(once, *identifiers)

    def per_user(self, route_app: ASGIApp, limit: UserLimit) -> ASGIApp:
        """The route's app behind the user's limit; runs after `auth.authenticate_first` verified the token."""
        items = parse_rate(limit.rate)

        async def limited(scope: Scope, receive: Receive, send: Send) -> None:
            principal: Principal = scope[PRINCIPAL_SCOPE_KEY]
            identifiers = ("user", limit.method, limit.path, principal.user_id)
            refusal = await self.refused(items, *identifiers)
            if refusal is not None:
                item, retry_after_s = refusal
                if limit.on_refused is not None and await self.first_refusal_in_window(item, *identifiers):
                    await limit.on_refused(LimitReached(principal, limit.method, limit.path, item))
                raise TooManyRequestsError(item, retry_after_s)
            await route_app(scope, receive, send)

        return limited

    def per_client(self, route_app: ASGIApp, *, path: str, rate: str) -> ASGIApp:
        """The route's app behind a limit per client address. Behind a proxy the address is the one the ASGI
        server took from `X-Forwarded-For` of a trusted proxy (uvicorn's `--forwarded-allow-ips`)."""
        items = parse_rate(rate)

        async def limited(scope: Scope, receive: Receive, send: Send) -> None:
            client: Any = scope.get("client")
            address = client[0] if client else "unknown"
            refusal = await self.refused(items, "client", scope["method"], path, address)
            if refusal is not None:
                raise TooManyRequestsError(*refusal)
            await route_app(scope, receive, send)

        return limited
