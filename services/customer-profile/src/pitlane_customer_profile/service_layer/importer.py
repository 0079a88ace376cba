"""Importing customers and vehicles from a shop's spreadsheet.

One row is one customer and, optionally, one of their vehicles; rows with the same phone are the same
customer. A dry run checks every row (format, and against what is already stored) and reports each bad one
by its spreadsheet row number and reason; a real run applies the good rows and skips the bad ones.

Idempotent: a customer is identified by the normalised phone, a vehicle by the plate. What already exists is
left as it is, and new aggregates get ids derived from those keys, so running the same file twice — even two
runs at once — creates nothing the second time.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError
from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession

from pitlane_customer_profile.adapters.custom_field_store import load_schema
from pitlane_customer_profile.adapters.tables import customer_phones, vehicles
from pitlane_customer_profile.domain.custom_fields import CustomFieldSchema
from pitlane_customer_profile.domain.customer import Customer
from pitlane_customer_profile.domain.vehicle import Vehicle
from pitlane_customer_profile.service_layer.commands import RegisterCustomer, RegisterVehicle
from pitlane_customer_profile.service_layer.unit_of_work import UnitOfWork, UnitOfWorkFactory
from pitlane_events.customer_profile import ConsentSource, CustomerSource, Gender, InsuranceCoverage
from pitlane_platform.errors import InvalidInputError
from pitlane_platform.messaging.eventstore import CommandContext
from pitlane_platform.schema import events

BATCH_ROWS = 1000
# Column headers as shops write them (Chinese or English) → command fields.
COLUMNS = {
    "姓名": "full_name",
    "full_name": "full_name",
    "手机": "phone",
    "手机号": "phone",
    "phone": "phone",
    "其他电话": "other_phones",
    "other_phones": "other_phones",
    "微信": "wechat_id",
    "wechat_id": "wechat_id",
    "性别": "gender",
    "gender": "gender",
    "生日": "birthday",
    "birthday": "birthday",
    "会员等级": "membership_tier",
    "membership_tier": "membership_tier",
    "标签": "tags",
    "tags": "tags",
    "偏好服务": "preferred_services",
    "preferred_services": "preferred_services",
    "备注": "notes",
    "notes": "notes",
    "车牌": "plate",
    "车牌号": "plate",
    "plate": "plate",
    "vin": "vin",
    "车架号": "vin",
    "品牌": "brand",
    "brand": "brand",
    "车型": "model",
    "model": "model",
    "年款": "model_year",
    "model_year": "model_year",
    "购车日期": "purchase_date",
    "purchase_date": "purchase_date",
    "上牌日期": "registration_date",
    "registration_date": "registration_date",
    "里程": "mileage_km",
    "mileage_km": "mileage_km",
    "保险公司": "insurer",
    "insurer": "insurer",
    "保险到期": "insurance_expires_on",
    "insurance_expires_on": "insurance_expires_on",
}
CUSTOMER_FIELDS = (
    "full_name",
    "phone",
    "other_phones",
    "wechat_id",
    "gender",
    "birthday",
    "membership_tier",
    "tags",
    "preferred_services",
    "notes",
)
VEHICLE_FIELDS = (
    "plate",
    "vin",
    "brand",
    "model",
    "model_year",
    "purchase_date",
    "registration_date",
    "mileage_km",
)
GENDERS = {
    "男": Gender.MALE,
    "女": Gender.FEMALE,
    "male": Gender.MALE,
    "female": Gender.FEMALE,
    "m": Gender.MALE,
    "f": Gender.FEMALE,
}
LIST_SEPARATORS = re.compile(r"[;；,，、|]")
IDENTITY_NAMESPACE = uuid.UUID("6f0c54a2-5d0e-4a55-9d57-0f3a4c2b1e7d")


@dataclass(frozen=True)
class RowProblem:
    row: int
    field: str
    reason: str


@dataclass
class ImportReport:
    dry_run: bool
    rows: int = 0
    customers_created: int = 0
    vehicles_created: int = 0
    customers_existing: int = 0
    vehicles_existing: int = 0
    problems: list[RowProblem] = field(default_factory=list)


@dataclass(frozen=True)
class ParsedRow:
    row: int
    customer: RegisterCustomer
    vehicle: RegisterVehicle | None  # owner_customer_id is filled when the customer's id is known


def identity(chain_id: str, kind: str, key: str) -> str:
    return str(uuid.uuid5(IDENTITY_NAMESPACE, f"{chain_id}:{kind}:{key}"))


def map_header(header: list[str], schema: CustomFieldSchema) -> dict[int, str]:
    """Column index → field; custom fields by their key. Unknown columns are ignored."""
    custom = {definition.key for definition in schema.fields}
    mapping: dict[int, str] = {}
    for index, title in enumerate(header):
        name = COLUMNS.get(
            title.lower()
        )  # the Chinese titles have no case; the English ones are keyed lower-case
        if name:
            mapping[index] = name
        elif title in custom:
            mapping[index] = f"custom:{title}"
    missing = {"full_name", "phone"} - set(mapping.values())
    if missing:
        raise InvalidInputError("file", f"missing columns: {', '.join(sorted(missing))} (e.g. 姓名, 手机)")
    return mapping


def parse_row(number: int, cells: list[str], mapping: dict[int, str], schema: CustomFieldSchema) -> ParsedRow:
    """The row's commands, or InvalidInputError naming the field (pydantic does the plate/VIN/phone work)."""
    values = {name: cells[index] for index, name in mapping.items() if index < len(cells) and cells[index]}
    customer_values: dict[str, Any] = {name: values[name] for name in CUSTOMER_FIELDS if name in values}
    for name in ("other_phones", "tags", "preferred_services"):
        if name in customer_values:
            customer_values[name] = tuple(
                p.strip() for p in LIST_SEPARATORS.split(customer_values[name]) if p.strip()
            )
    if "gender" in customer_values:
        gender = GENDERS.get(customer_values["gender"].lower())
        if gender is None:
            raise InvalidInputError("gender", f"{customer_values['gender']!r} is not 男 or 女")
        customer_values["gender"] = gender
    customer_values["custom_fields"] = {
        name.removeprefix("custom:"): value for name, value in values.items() if name.startswith("custom:")
    }
    customer = _validated(RegisterCustomer, {**customer_values, "source": CustomerSource.IMPORT})
    schema.validate(customer.custom_fields)
    vehicle = None
    if any(name in values for name in VEHICLE_FIELDS):
        vehicle_values: dict[str, Any] = {name: values[name] for name in VEHICLE_FIELDS if name in values}
        if "insurer" in values or "insurance_expires_on" in values:
            vehicle_values["insurance"] = (
                {
                    "coverage": InsuranceCoverage.COMPULSORY,
                    "insurer": values.get("insurer", ""),
                    "expires_on": values.get("insurance_expires_on", ""),
                },
            )
        vehicle = _validated(RegisterVehicle, {**vehicle_values, "owner_customer_id": "pending"})
    return ParsedRow(number, customer, vehicle)


def _validated(model: type[Any], values: dict[str, Any]) -> Any:
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        error = exc.errors()[0]
        location = [str(part) for part in error["loc"] if not isinstance(part, int)]
        name = location[0]
        if name == "insurance":  # the spreadsheet's columns, not the command's nesting
            name = "insurance_expires_on" if "expires_on" in location else "insurer"
        raise InvalidInputError(name, str(error["msg"]).removeprefix("Value error, ")) from None


async def run_import(
    uow: UnitOfWorkFactory,
    context: CommandContext,
    header: list[str],
    rows: Iterable[tuple[int, list[str]]],
    *,
    dry_run: bool,
    max_rows: int,
) -> ImportReport:
    report = ImportReport(dry_run=dry_run)
    async with uow() as unit:
        schema = await load_schema(unit.session)
    mapping = map_header(header, schema)
    seen_plates: dict[str, str] = {}  # plate → phone of the row that brought it, within this file
    seen_vins: dict[str, str] = {}
    file_customers: dict[str, str] = {}  # phone → id of the customer an earlier row of this file creates
    for batch in _batches(rows, BATCH_ROWS):
        report.rows += len(batch)
        if report.rows > max_rows:
            raise InvalidInputError("file", f"at most {max_rows} rows per import; split the file")
        parsed: list[ParsedRow] = []
        for number, cells in batch:
            try:
                row = parse_row(number, cells, mapping, schema)
            except InvalidInputError as problem:
                report.problems.append(RowProblem(number, problem.field, problem.message))
                continue
            if row.vehicle is not None and row.vehicle.plate in seen_plates:
                if seen_plates[row.vehicle.plate] != row.customer.phone:
                    report.problems.append(
                        RowProblem(number, "plate", f"{row.vehicle.plate} appears above with another phone")
                    )
                    continue
                report.vehicles_existing += 1  # the same car twice in the file: once is enough
                row = ParsedRow(number, row.customer, None)
            if row.vehicle is not None:
                seen_plates[row.vehicle.plate] = row.customer.phone
                if (
                    row.vehicle.vin
                    and seen_vins.setdefault(row.vehicle.vin, row.vehicle.plate) != row.vehicle.plate
                ):
                    report.problems.append(
                        RowProblem(number, "vin", f"{row.vehicle.vin} appears above with another plate")
                    )
                    continue
            parsed.append(row)
        async with uow() as unit:
            await _apply(unit, parsed, report, file_customers, context)
            if not dry_run:
                await unit.commit(context)
    return report


async def _apply(
    unit: UnitOfWork,
    parsed: list[ParsedRow],
    report: ImportReport,
    file_customers: dict[str, str],
    context: CommandContext,
) -> None:
    """Decide each row against what is stored and what earlier rows create; new aggregates join the unit of
    work, which the caller commits with `context` (or not, in a dry run); they record at its time."""
    chain_id, at = context.chain_id, context.occurred_at
    session = unit.session
    phones = {row.customer.phone for row in parsed} | {p for row in parsed for p in row.customer.other_phones}
    plates = {row.vehicle.plate for row in parsed if row.vehicle}
    vins = {row.vehicle.vin for row in parsed if row.vehicle and row.vehicle.vin}
    phone_owner = await _pairs(
        session,
        select(customer_phones.c.phone, customer_phones.c.customer_id).where(
            customer_phones.c.phone.in_(phones)
        ),
    )
    existing_plates = await _pairs(
        session, select(vehicles.c.plate, vehicles.c.owner_customer_id).where(vehicles.c.plate.in_(plates))
    )
    existing_vins = await _pairs(
        session, select(vehicles.c.vin, vehicles.c.plate).where(vehicles.c.vin.in_(vins))
    )
    new_customer_ids = await _new_ids(
        session, chain_id, "phone", {row.customer.phone for row in parsed} - phone_owner.keys()
    )
    new_vehicle_ids = await _new_ids(session, chain_id, "plate", plates - existing_plates.keys())

    for row in parsed:
        command = row.customer
        customer_id = phone_owner.get(command.phone)
        taken = [p for p in command.other_phones if phone_owner.get(p) not in (None, customer_id)]
        if taken:
            report.problems.append(
                RowProblem(row.row, "other_phones", f"{taken[0]} belongs to another customer")
            )
            continue
        vehicle = row.vehicle
        if vehicle and vehicle.vin and existing_vins.get(vehicle.vin) not in (None, vehicle.plate):
            report.problems.append(
                RowProblem(
                    row.row, "vin", f"{vehicle.vin} is registered with plate {existing_vins[vehicle.vin]}"
                )
            )
            continue
        if customer_id is None and command.phone in file_customers:
            customer_id = file_customers[command.phone]
        elif customer_id is None:
            customer = Customer.register(
                new_customer_ids[command.phone],
                full_name=command.full_name,
                phone=command.phone,
                source=CustomerSource.IMPORT,
                gender=command.gender,
                birthday=command.birthday,
                custom_fields=command.custom_fields,
                preferred_services=command.preferred_services,
                notes=command.notes,
                other_phones=command.other_phones,
                wechat_id=command.wechat_id,
                tags=command.tags,
                membership_tier=command.membership_tier,
                consent_source=ConsentSource.IMPORT,
                at=at,
            )
            unit.add(customer)
            file_customers[command.phone] = customer.id
            for phone in (command.phone, *command.other_phones):
                phone_owner[phone] = customer.id
            customer_id = customer.id
            report.customers_created += 1
        else:
            report.customers_existing += 1
        if vehicle is None:
            continue
        if vehicle.plate in existing_plates:
            report.vehicles_existing += 1
            continue
        registered = Vehicle.register(
            new_vehicle_ids[vehicle.plate],
            owner_customer_id=customer_id,
            plate=vehicle.plate,
            brand=vehicle.brand,
            model=vehicle.model,
            vin=vehicle.vin,
            model_year=vehicle.model_year,
            energy_type=vehicle.energy_type,
            purchase_date=vehicle.purchase_date,
            registration_date=vehicle.registration_date,
            mileage_km=vehicle.mileage_km,
            at=at,
        )
        for policy in vehicle.insurance:
            registered.update_insurance(
                coverage=policy.coverage, insurer=policy.insurer, expires_on=policy.expires_on, at=at
            )
        unit.add(registered)
        existing_plates[vehicle.plate] = customer_id
        if vehicle.vin:
            existing_vins[vehicle.vin] = vehicle.plate
        report.vehicles_created += 1


async def _new_ids(session: AsyncSession, chain_id: str, kind: str, keys: Iterable[str]) -> dict[str, str]:
    """Key → the id a new aggregate for it gets: derived from the key, so two runs of one file at once pick
    the same ids (and the second is refused by the event store). A key's id whose stream exists already —
    a customer erased (their phone freed), a car whose plate changed — gives way to the next derivation:
    taking it again failed the whole import on the event store's version check."""
    ids = {key: identity(chain_id, kind, key) for key in keys}
    unchecked = dict(ids)
    attempt = 0
    while unchecked:
        taken = set(
            (
                await session.execute(
                    select(events.c.stream_id)
                    .where(events.c.stream_id.in_(list(unchecked.values())))
                    .distinct()
                )
            ).scalars()
        )
        attempt += 1
        unchecked = {
            key: identity(chain_id, kind, f"{key}#{attempt}")
            for key, aggregate_id in unchecked.items()
            if aggregate_id in taken
        }
        ids.update(unchecked)
    return ids


async def _pairs(session: AsyncSession, statement: Select[Any]) -> dict[str, str]:
    return {str(key): str(value) for key, value in (await session.execute(statement)).tuples()}


def _batches(rows: Iterable[tuple[int, list[str]]], size: int) -> Iterator[list[tuple[int, list[str]]]]:
    batch: list[tuple[int, list[str]]] = []
    for row in rows:
        batch.append(row)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch
