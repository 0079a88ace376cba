"""Chinese licence plates, VINs and mobile numbers: validated and normalised where they enter the system.

Each `normalise_*` function takes what a person typed (spaces, separators, full-width characters, lower
case) and returns the one canonical form events carry, or raises ValueError saying what is wrong. The
`*Input` types wrap them for pydantic request models, so a bad value is a 422 that names the field, and
show in the JSON Schema (and so the OpenAPI document) a `pattern` of what may be typed: the canonical shape,
letters in either case, ASCII or full-width, separators anywhere. The pattern is what a client can check;
the validator stays the judge (a VIN's check digit, NFKC's rarer equivalents are beyond a pattern).
"""

from __future__ import annotations

import itertools
import re
import unicodedata
from collections.abc import Sequence
from typing import Annotated

from pydantic import AfterValidator, WithJsonSchema

# An identifier's shape is a sequence of character classes (the bodies of `[...]`), one per character: the
# strict regex of the canonical form and the tolerant pattern of what may be typed are both made from it.
Shape = Sequence[str]

PROVINCES = "京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼"
# Issuing-authority letters and serial characters never use I or O (they read as 1 and 0).
_LETTER = "A-HJ-NP-Z"
_SERIAL = f"{_LETTER}0-9"
_SUFFIXES = "挂学警港澳领试超"
_REGULAR_PLATE_SHAPE = (PROVINCES, _LETTER, *[_SERIAL] * 4, _SERIAL + _SUFFIXES)
# New-energy plates have six serial characters: small vehicles D/F first, large vehicles D/F last.
_NEW_ENERGY_SMALL_SHAPE = (PROVINCES, _LETTER, "DF", _SERIAL, *["0-9"] * 4)
_NEW_ENERGY_LARGE_SHAPE = (PROVINCES, _LETTER, *["0-9"] * 5, "DF")
_PLATE_SHAPES = (_REGULAR_PLATE_SHAPE, _NEW_ENERGY_SMALL_SHAPE, _NEW_ENERGY_LARGE_SHAPE)
_PLATE_SEPARATOR_CHARS = r"\s·•・.\-_"
_PLATE_SEPARATORS = re.compile(f"[{_PLATE_SEPARATOR_CHARS}]")


def _strict(shape: Shape) -> re.Pattern[str]:
    return re.compile("^" + "".join(f"[{char_class}]" for char_class in shape) + "$")


def _wide(char: str) -> str:
    """An ASCII character's full-width form (U+FF01…), which NFKC folds back."""
    return chr(ord(char) + 0xFEE0)


def _typed(shapes: Sequence[Shape], separators: str, prefix: str = "") -> str:
    """The JSON Schema pattern of what a person may type for one of `shapes`: each character in either case
    and width, separators before, between and after them; `prefix` (a pattern) may come first."""
    gap = f"[{separators}]*"

    def char(char_class: str) -> str:
        cases = dict.fromkeys((char_class, char_class.lower()))
        # Ranges keep their hyphen: the full-width letters and digits run in the same order as ASCII's.
        widths = ("".join(_wide(c) if c.isascii() and c.isalnum() else c for c in case) for case in cases)
        return "[" + "".join(dict.fromkeys([*cases, *widths])) + "]"

    def run(char_class: str, count: int) -> str:
        return (
            char(char_class)
            if count == 1
            else f"(?:{char(char_class)}{gap}){{{count - 1}}}{char(char_class)}"
        )

    alternatives = "|".join(
        gap.join(run(c, len(list(same))) for c, same in itertools.groupby(shape)) for shape in shapes
    )
    return f"^{gap}{prefix}(?:{alternatives}){gap}$"


_REGULAR_PLATE = _strict(_REGULAR_PLATE_SHAPE)
_NEW_ENERGY_SMALL = _strict(_NEW_ENERGY_SMALL_SHAPE)
_NEW_ENERGY_LARGE = _strict(_NEW_ENERGY_LARGE_SHAPE)


def normalise_plate(text: str) -> str:
    """`沪a·12345` → `沪A12345`; `粤B D12345` → `粤BD12345` (new energy)."""
    plate = _PLATE_SEPARATORS.sub("", unicodedata.normalize("NFKC", text)).upper()
    if not plate:
        raise ValueError("a licence plate is required")
    if plate[0] not in PROVINCES:
        raise ValueError(f"{text!r} does not start with a province abbreviation such as 京, 沪 or 粤")
    if _REGULAR_PLATE.match(plate) or _NEW_ENERGY_SMALL.match(plate) or _NEW_ENERGY_LARGE.match(plate):
        return plate
    raise ValueError(
        f"{text!r} is not a mainland plate: province, authority letter, then 5 characters "
        "(6 for new-energy plates, e.g. 粤BD12345); I and O are not used"
    )


def is_new_energy_plate(plate: str) -> bool:
    return len(plate) == 8


_VIN_VALUES = {
    **{str(d): d for d in range(10)},
    **dict(zip("ABCDEFGH", range(1, 9), strict=True)),
    **dict(zip("JKLMN", range(1, 6), strict=True)),
    "P": 7,
    "R": 9,
    **dict(zip("STUVWXYZ", range(2, 10), strict=True)),
}
_VIN_WEIGHTS = (8, 7, 6, 5, 4, 3, 2, 10, 0, 9, 8, 7, 6, 5, 4, 3, 2)


def vin_check_digit(vin: str) -> str:
    """The 9th character of a 17-character VIN (ISO 3779, as GB 16735 requires in China)."""
    remainder = sum(_VIN_VALUES[char] * weight for char, weight in zip(vin, _VIN_WEIGHTS, strict=True)) % 11
    return "X" if remainder == 10 else str(remainder)


# Every character of a VIN but I, O and Q (the keys of _VIN_VALUES).
_VIN_SHAPE = ("A-HJ-NPR-Z0-9",) * 17
_VIN_SEPARATOR_CHARS = r"\s\-"


def normalise_vin(text: str) -> str:
    vin = re.sub(f"[{_VIN_SEPARATOR_CHARS}]", "", unicodedata.normalize("NFKC", text)).upper()
    if len(vin) != 17:
        raise ValueError(f"a VIN has 17 characters, {text!r} has {len(vin)}")
    wrong = sorted({char for char in vin if char not in _VIN_VALUES})
    if wrong:
        raise ValueError(
            f"a VIN uses digits and letters except I, O and Q; {text!r} contains {''.join(wrong)}"
        )
    expected = vin_check_digit(vin)
    if vin[8] != expected:
        raise ValueError(f"the check digit (9th character) of {vin} should be {expected}, not {vin[8]}")
    return vin


_MOBILE_SHAPE = ("1", "3-9", *["0-9"] * 9)
_MOBILE = _strict(_MOBILE_SHAPE)
_MOBILE_SEPARATOR_CHARS = r"\s\-()."
_COUNTRY_PREFIXES = ("+86", "0086", "86")


def normalise_mobile(text: str) -> str:
    """A mainland mobile number in E.164: `138 1234 5678`, `+86-13812345678`, `008613812345678` → `+8613812345678`."""
    digits = re.sub(f"[{_MOBILE_SEPARATOR_CHARS}]", "", unicodedata.normalize("NFKC", text))
    for prefix in _COUNTRY_PREFIXES:
        if digits.startswith(prefix) and len(digits) == len(prefix) + 11:
            digits = digits[len(prefix) :]
            break
    if not _MOBILE.match(digits):
        raise ValueError(f"{text!r} is not a mainland mobile number (11 digits starting 13–19)")
    return f"+86{digits}"


def mask_mobile(e164: str) -> str:
    """What a technician sees: `+8613812345678` → `138****5678`."""
    local = e164.removeprefix("+86")
    return f"{local[:3]}****{local[-4:]}"


def _country_prefix_pattern() -> str:
    gap = f"[{_MOBILE_SEPARATOR_CHARS}]*"
    spelled = "|".join(gap.join(f"[{re.escape(c)}{_wide(c)}]" for c in p) for p in _COUNTRY_PREFIXES)
    return f"(?:(?:{spelled}){gap})?"


PLATE_PATTERN = _typed(_PLATE_SHAPES, _PLATE_SEPARATOR_CHARS)
VIN_PATTERN = _typed([_VIN_SHAPE], _VIN_SEPARATOR_CHARS)
MOBILE_PATTERN = _typed([_MOBILE_SHAPE], _MOBILE_SEPARATOR_CHARS, prefix=_country_prefix_pattern())

PlateInput = Annotated[
    str,
    AfterValidator(normalise_plate),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": PLATE_PATTERN,
            "description": "A mainland licence plate (5 serial characters, 6 for new-energy plates); case, "
            "width and separators are normalised: `沪a·12345` is 沪A12345",
            "examples": ["沪A12345", "粤BD12345"],
        }
    ),
]
VinInput = Annotated[
    str,
    AfterValidator(normalise_vin),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": VIN_PATTERN,
            "description": "A 17-character VIN (no I, O or Q) whose 9th character is its check digit "
            "(ISO 3779); case, width, spaces and hyphens are normalised",
            "examples": ["LSVAU218XN2183294"],
        }
    ),
]
MobileInput = Annotated[
    str,
    AfterValidator(normalise_mobile),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": MOBILE_PATTERN,
            "description": "A mainland mobile number (11 digits starting 13–19), with or without +86; "
            "spaces, hyphens, dots and brackets are ignored. Stored and answered in E.164 (+8613812345678)",
            "examples": ["138 1234 5678", "+8613812345678"],
        }
    ),
]
