"""What China's SMS rules make of a text: how many billed segments it is, and the marketing opt-out.

Alibaba Cloud and Tencent Cloud count the signature 【…】 with the text and bill one message up to 70
characters, and 67 characters per part beyond (a long SMS carries a header in each part); Chinese and Latin
characters count the same.
"""

from __future__ import annotations

import math
import unicodedata

SINGLE_SEGMENT_CHARS = 70
MULTIPART_SEGMENT_CHARS = 67

# Marketing SMS in China must tell the recipient how to stop them (回T退订, "reply T to unsubscribe").
OPT_OUT_TEXT = "回T退订"
OPT_OUT_REPLIES = frozenset({"T", "TD", "退订", "N"})


def with_signature(sign_name: str, text: str) -> str:
    return f"【{sign_name}】{text}"


def segments(text: str) -> int:
    """Billed segments of the text as sent (signature included)."""
    length = len(text)
    if length <= SINGLE_SEGMENT_CHARS:
        return 1
    return math.ceil(length / MULTIPART_SEGMENT_CHARS)


def with_opt_out(text: str) -> str:
    """A marketing text ending with the opt-out instruction, added once."""
    stripped = text.rstrip()
    if stripped.endswith(OPT_OUT_TEXT):
        return stripped
    return f"{stripped} {OPT_OUT_TEXT}"


def is_opt_out_reply(reply: str) -> bool:
    """Whether a customer's reply asks to stop marketing: T, TD or 退订, in any width or case."""
    normalised = unicodedata.normalize("NFKC", reply).strip().upper()
    return normalised in OPT_OUT_REPLIES
