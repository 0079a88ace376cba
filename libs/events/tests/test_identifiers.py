import re

import pytest
from pydantic import BaseModel, ValidationError

from pitlane_events.identifiers import (
    MOBILE_PATTERN,
    PLATE_PATTERN,
    VIN_PATTERN,
    MobileInput,
    PlateInput,
    VinInput,
    is_new_energy_plate,
    mask_mobile,
    normalise_mobile,
    normalise_plate,
    normalise_vin,
    vin_check_digit,
)


@pytest.mark.parametrize(
    ("typed", "plate"),
    [
        ("沪A12345", "沪A12345"),
        ("沪a·12345", "沪A12345"),
        (" 京 N 8 8 8 8 8 ", "京N88888"),
        ("粤B D12345", "粤BD12345"),  # small new-energy
        ("粤BFA1234", "粤BFA1234"),
        ("苏E12345D", "苏E12345D"),  # large new-energy
        ("浙A1234学", "浙A1234学"),
        ("鲁Ｂ１２３４５", "鲁B12345"),  # full-width input
    ],
)
def test_plates_are_normalised(typed, plate):
    assert normalise_plate(typed) == plate


@pytest.mark.parametrize(
    ("typed", "reason"),
    [
        ("", "required"),
        ("AB12345", "province"),
        ("沪A1234", "not a mainland plate"),
        ("沪AO2345", "not a mainland plate"),  # O is not used
        ("粤BX12345", "not a mainland plate"),  # 6 serial characters need D/F
        ("沪A123456789", "not a mainland plate"),
    ],
)
def test_bad_plates_say_why(typed, reason):
    with pytest.raises(ValueError, match=reason):
        normalise_plate(typed)


def test_new_energy_plates_are_recognised():
    assert is_new_energy_plate("粤BD12345") and not is_new_energy_plate("沪A12345")


def test_vin_check_digit_is_verified():
    assert vin_check_digit("1M8GDM9AXKP042788") == "X"
    assert normalise_vin("1m8gdm9a xkp042788") == "1M8GDM9AXKP042788"
    assert normalise_vin("LSVAU218XN2183294") == "LSVAU218XN2183294"
    with pytest.raises(ValueError, match=r"check digit .* should be X, not 1"):
        normalise_vin("1M8GDM9A1KP042788")
    with pytest.raises(ValueError, match="17 characters"):
        normalise_vin("LSVAU218XN218329")
    with pytest.raises(ValueError, match="contains IO"):
        normalise_vin("LSVAU218XN21832IO")


@pytest.mark.parametrize(
    "typed", ["13812345678", "+86 138 1234 5678", "0086-138-1234-5678", "86 13812345678"]
)
def test_mobiles_become_e164(typed):
    assert normalise_mobile(typed) == "+8613812345678"


@pytest.mark.parametrize("typed", ["12812345678", "1381234567", "+1 415 555 0100", "phone"])
def test_bad_mobiles_are_refused(typed):
    with pytest.raises(ValueError, match="not a mainland mobile"):
        normalise_mobile(typed)


def test_masking_for_technicians():
    assert mask_mobile("+8613812345678") == "138****5678"


def test_request_models_name_the_bad_field():
    class Registration(BaseModel):
        plate: PlateInput
        vin: VinInput
        phone: MobileInput

    ok = Registration(plate="沪a 12345", vin="LSVAU218XN2183294", phone="138 1234 5678")
    assert (ok.plate, ok.phone) == ("沪A12345", "+8613812345678")
    with pytest.raises(ValidationError) as error:
        Registration(plate="沪A12345", vin="LSVAU2181N2183294", phone="13812345678")
    assert [e["loc"] for e in error.value.errors()] == [("vin",)]


ACCEPTED = {
    PLATE_PATTERN: [
        "沪A12345",
        "沪a·12345",
        " 京 N 8 8 8 8 8 ",
        "粤B D12345",
        "苏E12345D",
        "浙A1234学",
        "鲁Ｂ１２３４５",
    ],
    VIN_PATTERN: ["1m8gdm9a xkp042788", "LSVAU218XN2183294", "LSVAU-218XN-2183294"],
    MOBILE_PATTERN: [
        "13812345678",
        "+86 138 1234 5678",
        "0086-138-1234-5678",
        "86 13812345678",
        "(138)12345678",
    ],
}
REFUSED_BY_PATTERN = {
    PLATE_PATTERN: ["", "AB12345", "沪A1234", "沪AO2345", "粤BX12345", "沪A123456789"],
    VIN_PATTERN: ["LSVAU218XN218329", "LSVAU218XN21832IO"],
    MOBILE_PATTERN: ["12812345678", "1381234567", "+1 415 555 0100", "phone"],
}
NORMALISE = {PLATE_PATTERN: normalise_plate, VIN_PATTERN: normalise_vin, MOBILE_PATTERN: normalise_mobile}


def test_the_documented_patterns_admit_what_the_validators_accept_and_refuse_what_they_refuse():
    for pattern, typed_values in ACCEPTED.items():
        for typed in typed_values:
            assert re.fullmatch(pattern, typed), typed
            assert re.fullmatch(pattern, NORMALISE[pattern](typed)), typed  # the canonical form too
    for pattern, typed_values in REFUSED_BY_PATTERN.items():
        for typed in typed_values:
            assert not re.fullmatch(pattern, typed), typed
            with pytest.raises(ValueError):
                NORMALISE[pattern](typed)


def test_request_models_show_the_patterns_and_still_validate():
    class Registration(BaseModel):
        plate: PlateInput
        vin: VinInput | None = None
        phone: MobileInput

    properties = Registration.model_json_schema()["properties"]
    assert properties["plate"]["pattern"] == PLATE_PATTERN
    assert properties["phone"]["pattern"] == MOBILE_PATTERN
    assert {"type": "string", "pattern": VIN_PATTERN} in [
        {key: option.get(key) for key in ("type", "pattern")} for option in properties["vin"]["anyOf"]
    ]
    with pytest.raises(ValidationError):
        Registration(plate="沪A12345", vin="LSVAU2181N2183294", phone="13812345678")  # the check digit
