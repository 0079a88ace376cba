"""Rates as settings write them, in the `limits` library's notation (its own module: settings.py checks
rates at start-up and is imported by everything, so this imports nothing of ours)."""

from __future__ import annotations

from limits import RateLimitItem, parse_many


def parse_rate(value: str) -> list[RateLimitItem]:
    """`30/minute;300/hour` as its windows; raises ValueError naming what is wrong."""
    try:
        return parse_many(value)
    except ValueError as error:
        raise ValueError(f"{value!r} is not a rate like '30/minute;300/hour' ({error})") from None


def checked_rate(value: str) -> str:
    """A settings validator's body: the rate unchanged, or the ValueError pydantic reports with the field."""
    parse_rate(value)
    return value
