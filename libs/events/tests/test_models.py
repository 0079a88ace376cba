"""What readers of the published events must be able to trust."""

from __future__ import annotations

import inspect
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

import pitlane_events
from pitlane_events import REGISTRY, DomainEvent
from pitlane_events.customer_profile import CustomerErased, VehicleRegistered
from pitlane_events.notification import NpsAnswered
from pitlane_events.reminder import ReminderScheduled
from pitlane_events.workorder import WorkOrderSettled

MODULE_OF_SERVICE = {
    "customer-profile": pitlane_events.customer_profile,
    "workorder": pitlane_events.workorder,
    "notification": pitlane_events.notification,
    "reminder": pitlane_events.reminder,
    "analytics": pitlane_events.analytics,
}


def documented_models() -> list[type[BaseModel]]:
    """Every event and every sub-model an event carries."""
    seen: dict[str, type[BaseModel]] = {}

    def visit(model: type[BaseModel]) -> None:
        if model.__name__ in seen:
            return
        seen[model.__name__] = model
        for field in model.model_fields.values():
            for candidate in _models_in(field.annotation):
                visit(candidate)

    for event_model in REGISTRY.models():
        visit(event_model)
    return list(seen.values())


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    if inspect.isclass(annotation) and issubclass(annotation, BaseModel):
        return [annotation]
    return [model for arg in getattr(annotation, "__args__", ()) for model in _models_in(arg)]


@pytest.mark.parametrize("model", documented_models(), ids=lambda model: model.__name__)
def test_every_model_and_field_is_described(model: type[BaseModel]) -> None:
    assert model.__doc__ and model.__doc__.strip(), f"{model.__name__} needs a docstring"
    undescribed = [name for name, field in model.model_fields.items() if not field.description]
    assert not undescribed, f"{model.__name__}: give these fields a docstring: {undescribed}"


@pytest.mark.parametrize("model", list(REGISTRY.models()), ids=lambda model: model.event_type)
def test_every_event_lives_in_its_services_module(model: type[DomainEvent]) -> None:
    assert model.__module__ == MODULE_OF_SERVICE[model.service()].__name__


def test_erasure_carries_ids_only() -> None:
    assert all(name.endswith(("_id", "_ids")) for name in CustomerErased.model_fields)


def nps_answer(score: int) -> NpsAnswered:
    return NpsAnswered(
        survey_id="s",
        work_order_id="w",
        customer_id="c",
        advisor_id="a",
        technician_ids=("t",),
        branch_id="b",
        score=score,
    )


@pytest.mark.parametrize("score", [0, 10])
def test_nps_scores_from_0_to_10_are_accepted(score: int) -> None:
    assert nps_answer(score).score == score


@pytest.mark.parametrize("score", [-1, 11])
def test_nps_scores_outside_0_to_10_are_rejected(score: int) -> None:
    with pytest.raises(ValidationError, match="score"):
        nps_answer(score)


def settlement(**changes: Any) -> WorkOrderSettled:
    line = {
        "item_code": "OIL",
        "name": "机油",
        "category": "parts",
        "quantity": "4.5",
        "unit_price_fen": 9800,
        "line_total_fen": 44100,
    }
    payment = {"method": "alipay", "amount_fen": 44100, "paid_at": datetime(2025, 6, 18, tzinfo=UTC)}
    fields = {
        "work_order_id": "w",
        "customer_id": "c",
        "settled_by": "a",
        "line_items": [line],
        "payments": [payment],
        "subtotal_fen": 44100,
        "discount_fen": 0,
        "total_fen": 44100,
        "paid_fen": 44100,
    }
    return WorkOrderSettled.model_validate({**fields, **changes})


def test_a_consistent_bill_is_accepted() -> None:
    assert settlement().total_fen == 44100


@pytest.mark.parametrize(
    ("changes", "complaint"),
    [
        ({"subtotal_fen": 44000}, "subtotal_fen"),
        ({"total_fen": 40000}, "total_fen"),
        ({"paid_fen": 0}, "paid_fen"),
        ({"discount_fen": 100}, "discount_fen"),
    ],
)
def test_totals_that_do_not_add_up_are_rejected(changes: dict[str, Any], complaint: str) -> None:
    with pytest.raises(ValidationError, match=complaint):
        settlement(**changes)


@pytest.mark.parametrize(
    "line_change", [{"unit_price_fen": -1}, {"quantity": "0"}, {"unit_price_fen": 98.5}], ids=str
)
def test_negative_money_zero_quantities_and_fractional_fen_are_rejected(line_change: dict[str, Any]) -> None:
    line = {
        "item_code": "OIL",
        "name": "机油",
        "category": "parts",
        "quantity": "1",
        "unit_price_fen": 9800,
        "line_total_fen": 0,
    }
    with pytest.raises(ValidationError):
        settlement(line_items=[{**line, **line_change}], subtotal_fen=0, total_fen=0)


@pytest.mark.parametrize("plate", ["沪A12345", "粤BD12345", "京N8888学"])
def test_normalised_plates_are_accepted(plate: str) -> None:
    assert vehicle(plate).plate == plate


@pytest.mark.parametrize("plate", ["沪a12345", "沪A 12345", "粤B·D12345", "A12345"])
def test_unnormalised_plates_are_rejected(plate: str) -> None:
    with pytest.raises(ValidationError, match="plate"):
        vehicle(plate)


def vehicle(plate: str) -> VehicleRegistered:
    return VehicleRegistered(vehicle_id="v", owner_customer_id="c", plate=plate, brand="比亚迪", model="汉")


def test_a_reminder_needs_a_due_date_or_mileage() -> None:
    with pytest.raises(ValidationError, match="due_on or due_mileage_km"):
        ReminderScheduled(
            reminder_id="r", rule_id="rule", kind="service_due_by_date", vehicle_id="v", customer_id="c"
        )


def test_events_are_immutable() -> None:
    answer = nps_answer(9)

    with pytest.raises(ValidationError):
        answer.score = 10  # type: ignore[misc]
    assert isinstance(answer.technician_ids, tuple)
