"""The customer: who they are, how to reach them, what they agreed to. Event-sourced; every change is one of
the published customer-profile events, so its stream is the audit trail."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from pitlane_events import DomainEvent
from pitlane_events.customer_profile import (
    ConsentChanged,
    ConsentSource,
    ContactKind,
    CustomerContactAdded,
    CustomerContactRemoved,
    CustomerErased,
    CustomerMembershipChanged,
    CustomerRegistered,
    CustomersMerged,
    CustomerSource,
    CustomerTagged,
    CustomerUntagged,
    CustomerUpdated,
    Gender,
)
from pitlane_events.types import Channel, Purpose
from pitlane_platform.aggregate import Aggregate
from pitlane_platform.errors import ConflictError, InvalidInputError

# The details CustomerUpdated carries; each maps to the attribute of the same name.
DETAIL_FIELDS = (
    "full_name",
    "gender",
    "birthday",
    "custom_fields",
    "referrer_customer_id",
    "preferred_services",
    "notes",
)


@dataclass(frozen=True)
class ConsentDecision:
    channel: Channel
    purpose: Purpose
    granted: bool


class Customer(Aggregate):
    """Commands take `at`, the command's time (aware, UTC): the time of the events they record."""

    def __init__(self, aggregate_id: str) -> None:
        super().__init__(aggregate_id)
        self.full_name = ""
        self.phone = ""
        self.other_phones: list[str] = []
        self.wechat_id: str | None = None
        self.gender = Gender.UNSPECIFIED
        self.birthday: date | None = None
        self.source = CustomerSource.WALK_IN
        self.registered_at_branch_id: str | None = None
        self.custom_fields: dict[str, str] = {}
        self.referrer_customer_id: str | None = None
        self.preferred_services: tuple[str, ...] = ()
        self.notes: str | None = None
        self.membership_tier: str | None = None
        self.tags: set[str] = set()
        self.consents: dict[tuple[Channel, Purpose], bool] = {}
        self.merged_customer_ids: list[str] = []
        self.erased = False

    # -- commands -------------------------------------------------------------------------------------

    @classmethod
    def register(
        cls,
        customer_id: str,
        *,
        full_name: str,
        phone: str,
        source: CustomerSource,
        gender: Gender = Gender.UNSPECIFIED,
        birthday: date | None = None,
        registered_at_branch_id: str | None = None,
        custom_fields: dict[str, str] | None = None,
        referrer_customer_id: str | None = None,
        preferred_services: tuple[str, ...] = (),
        notes: str | None = None,
        other_phones: tuple[str, ...] = (),
        wechat_id: str | None = None,
        tags: tuple[str, ...] = (),
        membership_tier: str | None = None,
        consents: tuple[ConsentDecision, ...] = (),
        consent_source: ConsentSource = ConsentSource.REGISTRATION_FORM,
        at: datetime,
    ) -> Customer:
        if referrer_customer_id == customer_id:
            raise InvalidInputError("referrer_customer_id", "a customer cannot refer themselves")
        customer = cls(customer_id)
        customer.record(
            CustomerRegistered(
                customer_id=customer_id,
                full_name=full_name,
                phone=phone,
                gender=gender,
                birthday=birthday,
                source=source,
                registered_at_branch_id=registered_at_branch_id,
                custom_fields=custom_fields or {},
                referrer_customer_id=referrer_customer_id,
                preferred_services=preferred_services,
                notes=notes,
            ),
            at,
        )
        customer.set_other_phones(other_phones, at=at)
        customer.set_wechat_id(wechat_id, at=at)
        customer.set_tags(tags, at=at)
        customer.change_membership(membership_tier, at=at)
        for decision in consents:
            customer.decide_consent(decision, consent_source, at=at)
        return customer

    def update_details(self, *, at: datetime, **changes: Any) -> None:
        """Record the given details (names from DETAIL_FIELDS) that differ from the current ones."""
        self._refuse_if_gone()
        unknown = set(changes) - set(DETAIL_FIELDS)
        if unknown:
            raise ValueError(f"not customer details: {sorted(unknown)}")
        if changes.get("referrer_customer_id") == self.id:
            raise InvalidInputError("referrer_customer_id", "a customer cannot refer themselves")
        if "full_name" in changes and not changes["full_name"]:
            raise InvalidInputError("full_name", "must not be blank")
        if "preferred_services" in changes:
            changes["preferred_services"] = tuple(changes["preferred_services"] or ())
        changed = [name for name in DETAIL_FIELDS if name in changes and changes[name] != getattr(self, name)]
        if changed:
            values = {name: changes[name] for name in changed}
            if values.get("custom_fields") == {}:
                values["custom_fields"] = None  # cleared: the event says so with a listed null
            if values.get("preferred_services") == ():
                values["preferred_services"] = None
            self.record(CustomerUpdated(customer_id=self.id, changed_fields=tuple(changed), **values), at)

    def change_primary_phone(self, phone: str, *, at: datetime) -> None:
        self._refuse_if_gone()
        if phone != self.phone:
            self.record(
                CustomerContactAdded(
                    customer_id=self.id, kind=ContactKind.PHONE, value=phone, is_primary=True
                ),
                at,
            )

    def set_other_phones(self, phones: tuple[str, ...], *, at: datetime) -> None:
        self._refuse_if_gone()
        wanted = [phone for phone in dict.fromkeys(phones) if phone != self.phone]
        for phone in self.other_phones:
            if phone not in wanted:
                self.record(
                    CustomerContactRemoved(customer_id=self.id, kind=ContactKind.PHONE, value=phone), at
                )
        for phone in wanted:
            if phone not in self.other_phones:
                self.record(
                    CustomerContactAdded(
                        customer_id=self.id, kind=ContactKind.PHONE, value=phone, is_primary=False
                    ),
                    at,
                )

    def set_wechat_id(self, wechat_id: str | None, *, at: datetime) -> None:
        self._refuse_if_gone()
        if wechat_id == self.wechat_id:
            return
        if self.wechat_id is not None:
            self.record(
                CustomerContactRemoved(customer_id=self.id, kind=ContactKind.WECHAT, value=self.wechat_id),
                at,
            )
        if wechat_id is not None:
            self.record(
                CustomerContactAdded(
                    customer_id=self.id, kind=ContactKind.WECHAT, value=wechat_id, is_primary=True
                ),
                at,
            )

    def set_tags(self, tags: tuple[str, ...], *, at: datetime) -> None:
        self._refuse_if_gone()
        wanted = set(tags)
        for tag in sorted(self.tags - wanted):
            self.record(CustomerUntagged(customer_id=self.id, tag=tag), at)
        for tag in sorted(wanted - self.tags):
            self.record(CustomerTagged(customer_id=self.id, tag=tag), at)

    def change_membership(self, tier: str | None, *, reason: str | None = None, at: datetime) -> None:
        self._refuse_if_gone()
        if tier != self.membership_tier:
            self.record(
                CustomerMembershipChanged(
                    customer_id=self.id, previous_tier=self.membership_tier, tier=tier, reason=reason
                ),
                at,
            )

    def decide_consent(self, decision: ConsentDecision, source: ConsentSource, *, at: datetime) -> None:
        self._refuse_if_gone()
        if self.consents.get((decision.channel, decision.purpose)) != decision.granted:
            self.record(
                ConsentChanged(
                    customer_id=self.id,
                    channel=decision.channel,
                    purpose=decision.purpose,
                    granted=decision.granted,
                    source=source,
                ),
                at,
            )

    def absorb(self, duplicates: list[Customer], reason: str | None, *, at: datetime) -> None:
        """Merge duplicate records into this one: their phones, WeChat id and tags join it; what this record
        already says wins. The duplicates' own streams stay as they were (history)."""
        self._refuse_if_gone()
        if not duplicates:
            raise InvalidInputError("merged_customer_ids", "name at least one customer to merge")
        for duplicate in duplicates:
            if duplicate.id == self.id:
                raise InvalidInputError("merged_customer_ids", "a customer cannot be merged into itself")
            duplicate._refuse_if_gone()
        phones = list(self.other_phones)
        for duplicate in duplicates:
            phones += [duplicate.phone, *duplicate.other_phones]
        self.set_other_phones(tuple(phones), at=at)
        if self.wechat_id is None:
            self.set_wechat_id(next((d.wechat_id for d in duplicates if d.wechat_id), None), at=at)
        self.set_tags(tuple(self.tags.union(*(d.tags for d in duplicates))), at=at)
        self.record(
            CustomersMerged(
                surviving_customer_id=self.id,
                merged_customer_ids=tuple(d.id for d in duplicates),
                reason=reason,
            ),
            at,
        )

    def erase(self, erasure_request_id: str, vehicle_ids: tuple[str, ...], *, at: datetime) -> None:
        if self.erased:
            raise ConflictError(f"customer {self.id} is already erased")
        self.record(
            CustomerErased(
                customer_id=self.id, vehicle_ids=vehicle_ids, erasure_request_id=erasure_request_id
            ),
            at,
        )

    def _refuse_if_gone(self) -> None:
        if self.erased:
            raise ConflictError(f"customer {self.id} was erased")

    # -- state ----------------------------------------------------------------------------------------

    def apply(self, event: DomainEvent, occurred_at: datetime) -> None:
        match event:
            case CustomerRegistered():
                self.full_name = event.full_name
                self.phone = event.phone
                self.gender = event.gender
                self.birthday = event.birthday
                self.source = event.source
                self.registered_at_branch_id = event.registered_at_branch_id
                self.custom_fields = dict(event.custom_fields)
                self.referrer_customer_id = event.referrer_customer_id
                self.preferred_services = tuple(event.preferred_services)
                self.notes = event.notes
            case CustomerUpdated():
                for name in event.changed_fields:
                    value = getattr(event, name)
                    if name == "custom_fields":
                        value = dict(value or {})
                    elif name == "preferred_services":
                        value = tuple(value or ())
                    elif name == "gender" and value is None:
                        value = Gender.UNSPECIFIED
                    setattr(self, name, value)
            case CustomerContactAdded(kind=ContactKind.PHONE):
                if event.is_primary:
                    previous = self.phone
                    self.other_phones = [p for p in self.other_phones if p != event.value]
                    if previous and previous != event.value:
                        self.other_phones.append(previous)
                    self.phone = event.value
                elif event.value not in self.other_phones:
                    self.other_phones.append(event.value)
            case CustomerContactRemoved(kind=ContactKind.PHONE):
                self.other_phones = [p for p in self.other_phones if p != event.value]
            case CustomerContactAdded(kind=ContactKind.WECHAT):
                self.wechat_id = event.value
            case CustomerContactRemoved(kind=ContactKind.WECHAT):
                self.wechat_id = None
            case CustomerTagged():
                self.tags.add(event.tag)
            case CustomerUntagged():
                self.tags.discard(event.tag)
            case CustomerMembershipChanged():
                self.membership_tier = event.tier
            case ConsentChanged():
                self.consents[(event.channel, event.purpose)] = event.granted
            case CustomersMerged():
                self.merged_customer_ids += event.merged_customer_ids
            case CustomerErased():
                self.erased = True
