"""What SMS providers push to us: delivery receipts (状态报告) and the customers' replies (上行短信).

Aliyun's "HTTP batch push" (HTTP批量推送) posts JSON arrays, to one URL for each kind:
- SmsReport: `{phone_number, send_time, report_time, success, err_code, err_msg, sms_size, biz_id, out_id}`,
  `biz_id` being the BizId SendSms answered;
- SmsUp: `{phone_number, content, sign_name, send_time, dest_code, sequence_id}`.

Tencent's callbacks:
- status reports, a JSON array of `{user_receive_time, nationcode, mobile, report_status ("SUCCESS" or
  "FAIL"), errmsg, description, sid}`, `sid` being the SerialNo SendSms answered;
- replies, one JSON object per reply: `{extend, mobile, nationcode, sign, text, time}`.

Both parsers take either shape (a single object is read as a list of one) and raise ValueError naming the
item and the field that is wrong, never quoting a value (they hold phone numbers). Replies from outside
mainland China are skipped: no customer of ours can be reached at such a number.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from pitlane_notification.adapters.channels.base import DeliveryReport, InboundReply

Parsed = TypeVar("Parsed")

MAINLAND_MOBILE = re.compile(r"1\d{10}")
COUNTRY_PREFIXES = ("+86", "0086", "86")
MAINLAND_NATION_CODES = frozenset({"86", "+86", "0086"})


def parse_delivery_reports(provider: str, payload: object) -> list[DeliveryReport]:
    parsers: dict[str, Callable[[_Item], DeliveryReport | None]] = {
        "aliyun": _aliyun_report,
        "tencent": _tencent_report,
    }
    return _parse(provider, payload, "delivery report", parsers)


def parse_inbound_replies(provider: str, payload: object) -> list[InboundReply]:
    parsers: dict[str, Callable[[_Item], InboundReply | None]] = {
        "aliyun": _aliyun_reply,
        "tencent": _tencent_reply,
    }
    return _parse(provider, payload, "reply", parsers)


def normalise_mobile(raw: str) -> str:
    """The 11-digit mainland number `raw` names, with or without +86 / 0086 / 86; ValueError if none."""
    number = raw.strip().replace(" ", "").replace("-", "")
    for prefix in COUNTRY_PREFIXES:
        if number.startswith(prefix) and len(number) == len(prefix) + 11:
            number = number[len(prefix) :]
            break
    if not MAINLAND_MOBILE.fullmatch(number):
        raise ValueError("not an 11-digit mainland mobile number")
    return number


class _Item:
    """One pushed item, whose accessors raise ValueError naming the item and the field."""

    def __init__(self, fields: Mapping[str, Any], where: str) -> None:
        self._fields = fields
        self.where = where

    def text(self, name: str) -> str:
        value = self._fields.get(name)
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"{self.where}: {name!r} is missing or not a non-empty string")
        return value

    def optional_text(self, name: str) -> str | None:
        value = self._fields.get(name)
        if value is not None and not isinstance(value, str):
            raise ValueError(f"{self.where}: {name!r} is not a string")
        return value

    def flag(self, name: str) -> bool:
        value = self._fields.get(name)
        if not isinstance(value, bool):
            raise ValueError(f"{self.where}: {name!r} is missing or not true/false")
        return value

    def mobile(self, name: str) -> str:
        try:
            return normalise_mobile(self.text(name))
        except ValueError as error:
            raise ValueError(f"{self.where}: {name!r}: {error}") from None


def _parse(
    provider: str,
    payload: object,
    what: str,
    parsers: Mapping[str, Callable[[_Item], Parsed | None]],
) -> list[Parsed]:
    parser = parsers.get(provider)
    if parser is None:
        raise ValueError(f"no {what} parser for provider {provider!r} (known: {', '.join(sorted(parsers))})")
    items = [payload] if isinstance(payload, dict) else payload
    if not isinstance(items, list):
        raise ValueError(f"{provider} {what}s: expected a JSON array or object, got {type(payload).__name__}")
    parsed: list[Parsed] = []
    for index, item in enumerate(items):
        where = f"{provider} {what} {index}"
        if not isinstance(item, dict):
            raise ValueError(f"{where}: expected a JSON object, got {type(item).__name__}")
        result = parser(_Item(item, where))
        if result is not None:
            parsed.append(result)
    return parsed


def _aliyun_report(item: _Item) -> DeliveryReport:
    delivered = item.flag("success")
    return DeliveryReport(
        provider="aliyun",
        provider_message_id=item.text("biz_id"),
        delivered=delivered,
        # On success err_code is "DELIVERED": no error.
        error_code=None if delivered else item.optional_text("err_code"),
    )


def _tencent_report(item: _Item) -> DeliveryReport:
    status = item.text("report_status")
    if status not in ("SUCCESS", "FAIL"):
        raise ValueError(f"{item.where}: 'report_status' is neither SUCCESS nor FAIL")
    delivered = status == "SUCCESS"
    return DeliveryReport(
        provider="tencent",
        provider_message_id=item.text("sid"),
        delivered=delivered,
        # errmsg is the carrier's status code ("DELIVRD" on success).
        error_code=None if delivered else item.optional_text("errmsg"),
    )


def _aliyun_reply(item: _Item) -> InboundReply:
    return InboundReply(
        provider="aliyun", phone=item.mobile("phone_number"), text=item.text("content").strip()
    )


def _tencent_reply(item: _Item) -> InboundReply | None:
    nation_code = item.optional_text("nationcode")
    if nation_code is not None and nation_code not in MAINLAND_NATION_CODES:
        return None
    return InboundReply(provider="tencent", phone=item.mobile("mobile"), text=item.text("text").strip())
