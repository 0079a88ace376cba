"""Chinese licence plates, VINs and mobile numbers: validated and normalised where they enter the system.

Each `normalise_*` function takes what a person typed (spaces, separators, full-width characters, lower
case) and returns the one canonical form events carry, or raises ValueError saying what is wrong. The
`*Input` types wrap them for pydantic request models, so a bad value is a 422 that names the field.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Annotated

from pydantic import AfterValidator

PROVINCES = "京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼"
# Issuing-authority letters and serial characters never use I or O (they read as 1 and 0).
_LETTER = "A-HJ-NP-Z"
_SERIAL = f"{_LETTER}0-9"
_SUFFIXES = "挂学警港澳领试超"
_REGULAR_PLATE = re.compile(rf"^[{PROVINCES}][{_LETTER}][{_SERIAL}]{{4}}[{_SERIAL}{_SUFFIXES}]$")
# New-energy plates have six serial characters: small vehicles D/F first, large vehicles D/F last.
_NEW_ENERGY_SMALL = re.compile(rf"^[{PROVINCES}][{_LETTER}][DF][{_SERIAL}][0-9]{{4}}$")
_NEW_ENERGY_LARGE = re.compile(rf"^[{PROVINCES}][{_LETTER}][0-9]{{5}}[DF]$")
_PLATE_SEPARATORS = re.compile(r"[\s·•・.\-_]")


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


def normalise_vin(text: str) -> str:
    vin = re.sub(r"[\s\-]", "", unicodedata.normalize("NFKC", text)).upper()
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


_MOBILE = re.compile(r"^1[3-9][0-9]{9}$")


def normalise_mobile(text: str) -> str:
    """A mainland mobile number in E.164: `138 1234 5678`, `+86-13812345678`, `008613812345678` → `+8613812345678`."""
    digits = re.sub(r"[\s\-().]", "", unicodedata.normalize("NFKC", text))
    for prefix in ("+86", "0086", "86"):
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


PlateInput = Annotated[str, AfterValidator(normalise_plate)]
VinInput = Annotated[str, AfterValidator(normalise_vin)]
MobileInput = Annotated[str, AfterValidator(normalise_mobile)]
