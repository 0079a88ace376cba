"""Delivery receipts and customers' replies as Aliyun and Tencent push them (their documented JSON), parsed,
and what is malformed refused naming the item and the field, never the phone number."""

from __future__ import annotations

import json

import pytest

from pitlane_notification.adapters.channels.base import DeliveryReport, InboundReply
from pitlane_notification.adapters.channels.receipts import (
    normalise_mobile,
    parse_delivery_reports,
    parse_inbound_replies,
)

# Aliyun SmsReport, HTTP batch push (as its documentation shows it, with our data).
ALIYUN_REPORTS = """[
  {"phone_number": "13812345678", "send_time": "2026-12-06 09:00:00", "report_time": "2026-12-06 09:00:05",
   "success": true, "err_code": "DELIVERED", "err_msg": "用户接收成功", "sms_size": "1",
   "biz_id": "900619746936498440^0", "out_id": "msg-0001"},
  {"phone_number": "13987654321", "send_time": "2026-12-06 09:00:00", "report_time": "2026-12-06 09:01:00",
   "success": false, "err_code": "MK:0001", "err_msg": "空号", "sms_size": "1",
   "biz_id": "900619746936498441^0", "out_id": "msg-0002"}
]"""
# Aliyun SmsUp, HTTP batch push.
ALIYUN_REPLIES = """[
  {"phone_number": "13812345678", "send_time": "2026-12-06 09:10:00", "content": " TD ",
   "sign_name": "车友汽修", "dest_code": "1234", "sequence_id": 1234567890},
  {"phone_number": "8613987654321", "send_time": "2026-12-06 09:11:00", "content": "好的，明天见",
   "sign_name": "车友汽修", "dest_code": "1234", "sequence_id": 1234567891}
]"""
# Tencent's status callback.
TENCENT_REPORTS = """[
  {"user_receive_time": "2026-12-06 09:00:05", "nationcode": "86", "mobile": "13812345678",
   "report_status": "SUCCESS", "errmsg": "DELIVRD", "description": "用户短信送达成功", "sid": "2433:1"},
  {"user_receive_time": "2026-12-06 09:00:06", "nationcode": "86", "mobile": "+8613987654321",
   "report_status": "FAIL", "errmsg": "MK:0005", "description": "用户短信接收失败", "sid": "2433:2"}
]"""
# Tencent's reply callback: one object per reply.
TENCENT_REPLY = """{"extend": "", "mobile": "+8613812345678", "nationcode": "86", "sign": "车友汽修",
   "text": "TD", "time": 1796000000}"""


def test_aliyun_delivery_reports_parse() -> None:
    assert parse_delivery_reports("aliyun", json.loads(ALIYUN_REPORTS)) == [
        DeliveryReport("aliyun", "900619746936498440^0", delivered=True, error_code=None),
        DeliveryReport("aliyun", "900619746936498441^0", delivered=False, error_code="MK:0001"),
    ]


def test_tencent_delivery_reports_parse() -> None:
    assert parse_delivery_reports("tencent", json.loads(TENCENT_REPORTS)) == [
        DeliveryReport("tencent", "2433:1", delivered=True, error_code=None),
        DeliveryReport("tencent", "2433:2", delivered=False, error_code="MK:0005"),
    ]


def test_aliyun_replies_parse_with_phones_normalised() -> None:
    assert parse_inbound_replies("aliyun", json.loads(ALIYUN_REPLIES)) == [
        InboundReply("aliyun", phone="13812345678", text="TD"),
        InboundReply("aliyun", phone="13987654321", text="好的，明天见"),
    ]


def test_a_tencent_reply_parses_alone_or_in_a_list_and_foreign_numbers_are_skipped() -> None:
    reply = json.loads(TENCENT_REPLY)
    foreign = reply | {"nationcode": "852", "mobile": "91234567"}

    assert parse_inbound_replies("tencent", reply) == [
        InboundReply("tencent", phone="13812345678", text="TD")
    ]
    assert parse_inbound_replies("tencent", [foreign, reply, foreign]) == [
        InboundReply("tencent", phone="13812345678", text="TD")
    ]
    assert parse_inbound_replies("tencent", []) == []


@pytest.mark.parametrize(
    "raw",
    [
        "13812345678",
        "+8613812345678",
        "008613812345678",
        "8613812345678",
        " 138 1234 5678 ",
        "+86-138-1234-5678",
    ],
)
def test_mobile_numbers_are_normalised_to_eleven_digits(raw: str) -> None:
    assert normalise_mobile(raw) == "13812345678"


@pytest.mark.parametrize(
    "raw", ["", "1381234567", "138123456789", "23812345678", "+85291234567", "+86138123456x"]
)
def test_what_is_no_mainland_mobile_number_is_refused(raw: str) -> None:
    with pytest.raises(ValueError, match="not an 11-digit mainland mobile number"):
        normalise_mobile(raw)


@pytest.mark.parametrize(
    ("provider", "payload", "problem"),
    [
        ("aliyun", "not json", "expected a JSON array or object, got str"),
        ("aliyun", 42, "expected a JSON array or object, got int"),
        ("aliyun", [["nested"]], "aliyun delivery report 0: expected a JSON object, got list"),
        ("aliyun", [{"success": True}], "aliyun delivery report 0: 'biz_id' is missing"),
        (
            "aliyun",
            [{"biz_id": "9^0", "success": "true"}],
            "aliyun delivery report 0: 'success' is missing or not",
        ),
        ("aliyun", [{"biz_id": "9^0", "success": False, "err_code": 7}], "0: 'err_code' is not a string"),
        (
            "tencent",
            [{"sid": "2433:1", "report_status": "DELIVERED"}],
            "'report_status' is neither SUCCESS nor",
        ),
        ("tencent", [{"report_status": "SUCCESS", "sid": ""}], "tencent delivery report 0: 'sid' is missing"),
        ("huawei", [], "no delivery report parser for provider 'huawei' (known: aliyun, tencent)"),
    ],
)
def test_malformed_delivery_reports_are_refused_naming_the_problem(
    provider: str, payload: object, problem: str
) -> None:
    with pytest.raises(ValueError, match=problem.replace("(", r"\(").replace(")", r"\)")):
        parse_delivery_reports(provider, payload)


def test_a_malformed_item_is_named_by_its_place_in_the_batch() -> None:
    reports = json.loads(TENCENT_REPORTS)
    reports[1]["report_status"] = None

    with pytest.raises(ValueError, match="tencent delivery report 1: 'report_status' is missing"):
        parse_delivery_reports("tencent", reports)


@pytest.mark.parametrize(
    ("provider", "payload", "problem"),
    [
        ("aliyun", [{"content": "TD"}], "aliyun reply 0: 'phone_number' is missing"),
        ("aliyun", [{"phone_number": "13812345678", "content": ""}], "aliyun reply 0: 'content' is missing"),
        (
            "aliyun",
            [{"phone_number": "1381234", "content": "TD"}],
            "aliyun reply 0: 'phone_number': not an 11-digit",
        ),
        (
            "tencent",
            {"mobile": "13812345678", "nationcode": 86, "text": "TD"},
            "tencent reply 0: 'nationcode' is not",
        ),
        ("tencent", {"mobile": "13812345678", "nationcode": "86"}, "tencent reply 0: 'text' is missing"),
    ],
)
def test_malformed_replies_are_refused_naming_the_problem_but_no_number(
    provider: str, payload: object, problem: str
) -> None:
    with pytest.raises(ValueError, match=problem) as raised:
        parse_inbound_replies(provider, payload)

    assert "1381234" not in str(raised.value)
