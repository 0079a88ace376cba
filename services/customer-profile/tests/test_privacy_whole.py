"""Privacy asserted on everything, not on named fields: a masked role's answers from every GET route of the
OpenAPI document, and — after an erasure — every text, JSON, array and binary column of every table of the
service's database, every stored event as a rebuild would open it, the service's stream with its dead
letters and replays, and every GET route again."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from datetime import UTC, datetime

from profile_testing import (
    Answer,
    Producer,
    Service,
    completion,
    database_texts_with,
    eventually,
    handled,
    holding,
    inconsistencies,
    make_vin,
    needles,
    outbox_published,
    register_customer,
    register_vehicle,
    serving,
    stream_texts,
    walk_get_routes,
)
from sqlalchemy import select

from pitlane_customer_profile.adapters.event_store import ProfileEventStore
from pitlane_customer_profile.adapters.pii_vault import PiiVault
from pitlane_customer_profile.adapters.tables import erasures
from pitlane_customer_profile.bootstrap import CustomerProfileSettings
from pitlane_events.customer_profile import CustomerErased
from pitlane_events.notification import CustomerUnsubscribed, NpsAnswered, UnsubscribeSource
from pitlane_events.types import Channel, Purpose
from pitlane_events.workorder import BookingChannel, CustomerIntroduced
from pitlane_platform.db import advisory_lock_key


def leaks(answers: list[Answer], secrets: set[str]) -> list[tuple[str, dict[str, str], int, str]]:
    return [(a.route, a.params, a.status, s) for a in answers for s in sorted(secrets) if s in a.body]


async def test_a_technician_meets_no_full_phone_number_and_no_wechat_id_on_any_get_route(
    service: Service,
) -> None:
    customer_id = await register_customer(service)  # 138 1234 5678, other 139 0000 1111, wx_wangjg
    duplicate = await register_customer(
        service, full_name="王建国", phone="13700000000", other_phones=[], wechat_id="wx_dup"
    )
    assert (
        await service.post(f"/v1/customers/{customer_id}/merge", {"merged_customer_ids": [duplicate]})
    ).status_code == 200
    assert (
        await service.patch(f"/v1/customers/{customer_id}", {"phone": "13600001234"})
    ).status_code == 200  # the old primary stays as another phone
    vin = make_vin(7)
    vehicle_id = await register_vehicle(service, customer_id, "沪A12345", vin)
    query_values = {
        "name": ["王"],
        "phone_prefix": ["136", "138"],
        "plate": ["沪A12345", "A123"],
        "tag": ["价格敏感"],
        "phone": ["13600001234"],  # typed by the technician: the answer still shows it masked
        "vin": [vin],
        "customer_id": [customer_id],
        "reader_user_id": ["amy"],
        "subject": ["amy"],
        "resource_id": [customer_id],
    }
    path_values = {"customer_id": customer_id, "vehicle_id": vehicle_id}
    secrets = needles(
        "+8613600001234", "+8613812345678", "+8613900001111", "+8613700000000", "wx_wangjg", "wx_dup"
    )

    technician = await walk_get_routes(service, service.headers("technician"), path_values, query_values)

    assert leaks(technician, secrets) == []
    # The walk reached every GET route (an answer, or the role's 403) and met the numbers it must mask.
    reached = {a.route for a in technician if a.status in (200, 403)}
    assert reached == {a.route for a in technician}, sorted({a.route for a in technician} - reached)
    masked = {a.route for a in technician if a.status == 200 and "136****1234" in a.body}
    assert {"/v1/customers/{customer_id}", "/v1/lookup", "/v1/customers"} <= masked
    # ... which the front desk sees in full: the same walk finds them.
    advisor = await walk_get_routes(service, service.headers("advisor"), path_values, query_values)
    assert {s for _, _, _, s in leaks(advisor, secrets)} >= {"+8613600001234", "+8613812345678", "wx_wangjg"}


async def opened_events_with(service: Service, secrets: set[str]) -> set[str]:
    """Which secrets the stored events yield when opened with the master key, as a rebuild would."""
    async with service.runtime.sessions() as session:
        opened = json.dumps(
            await ProfileEventStore(PiiVault(service.settings.master_key())).replay(session),
            ensure_ascii=False,
        )
    return {secret for secret in secrets if secret in opened}


def scrubbed(service: Service, request_id: str) -> Callable[[], Awaitable[bool]]:
    """Whether the erasure's copies in the stream were scrubbed (the scrubber stamps its erasure)."""

    async def stamped() -> bool:
        async with service.runtime.sessions() as session:
            done = await session.scalar(
                select(erasures.c.stream_messages_scrubbed_at).where(
                    erasures.c.erasure_request_id == request_id
                )
            )
        return done is not None

    return stamped


async def test_after_erasure_no_value_of_the_customer_is_left_in_any_column_event_message_or_answer(
    service: Service, producer: Producer
) -> None:
    assert (
        await service.client.put(
            "/v1/custom-fields",
            json=[{"key": "company", "label": "单位", "type": "text"}],
            headers=service.owner_headers(),
        )
    ).status_code == 200
    customer_id = await register_customer(
        service, custom_fields={"company": "张江高科秘密"}, notes="只在周末来店"
    )  # 王建国, 138 1234 5678, 139 0000 1111, wx_wangjg, born 1982-04-17
    changed = await service.patch(
        f"/v1/customers/{customer_id}",
        {
            "full_name": "王建华",
            "phone": "13600001234",
            "wechat_id": "wx_wang_new",
            "notes": "新的备注内容秘",
            "custom_fields": {"company": "陆家嘴金融秘"},
        },
    )
    assert changed.status_code == 200, changed.text
    # A duplicate that had absorbed a duplicate of its own, merged in: the same person, three records.
    first = await register_customer(
        service,
        full_name="王小国",
        phone="13500000000",
        other_phones=[],
        wechat_id="wx_xiaoguo",
        notes="小国秘",
    )
    second = await register_customer(
        service,
        full_name="王大国",
        phone="13700000000",
        other_phones=[],
        wechat_id="wx_daguo",
        notes="大国秘",
    )
    for survivor, merged in ((second, first), (customer_id, second)):
        response = await service.post(f"/v1/customers/{survivor}/merge", {"merged_customer_ids": [merged]})
        assert response.status_code == 200, response.text
    vin = make_vin(3)
    vehicle_id = await register_vehicle(service, customer_id, "沪A12345", vin)
    published = [
        # Workorder met them at a booking under a phone already theirs: adopted, and merged in (ADR 11).
        await producer.publish(
            CustomerIntroduced(
                customer_id="wo-customer-9",
                full_name="王先生秘",
                phone="+8613812345678",
                met_through=BookingChannel.PHONE,
            ),
            aggregate_id="wo-customer-9",
        ),
        await producer.publish(
            completion(
                work_order_id="wo-1",
                customer_id=customer_id,
                vehicle_id=vehicle_id,
                plate="沪A12345",
                mileage_km=20_000,
                completed_at=datetime(2026, 5, 1, tzinfo=UTC),
            ),
            aggregate_id="wo-1",
            version=5,
        ),
        await producer.publish(
            NpsAnswered(
                survey_id="s-1",
                work_order_id="wo-1",
                customer_id=customer_id,
                advisor_id="amy",
                technician_ids=("tom",),
                branch_id="b1",
                score=9,
                comment="王师傅很专业秘",
            ),
            aggregate_id="s-1",
        ),
        await producer.publish(
            CustomerUnsubscribed(
                customer_id=customer_id,
                channel=Channel.SMS,
                purpose=Purpose.MARKETING,
                source=UnsubscribeSource.LINK,
            ),
            aggregate_id="n-1",
        ),
    ]
    await handled(service, *published)
    await outbox_published(service)
    values = (
        *("王建国", "王建华", "王小国", "王大国", "王先生秘"),
        *("+8613812345678", "+8613900001111", "+8613600001234", "+8613500000000", "+8613700000000"),
        *("wx_wangjg", "wx_wang_new", "wx_xiaoguo", "wx_daguo"),
        *(
            "只在周末来店",
            "新的备注内容秘",
            "小国秘",
            "大国秘",
            "张江高科秘密",
            "陆家嘴金融秘",
            "王师傅很专业秘",
        ),
        "1982-04-17",
    )
    secrets = needles(*values)
    # The probes see every value while it is there: in a column, or in the published stream.
    seen = set().union(*(await database_texts_with(service, secrets)).values())
    seen |= {s for s in secrets for t in await stream_texts(producer, whole=True) if s in t}
    assert [value for value in values if not needles(value) & seen] == []
    assert await inconsistencies(service) == []

    erased = await service.client.post(
        f"/v1/customers/{customer_id}/erasure", headers=service.owner_headers()
    )
    assert erased.status_code == 200, erased.text
    request_id = erased.json()["erasure_request_id"]

    await eventually(scrubbed(service, request_id))
    await outbox_published(service)

    assert await database_texts_with(service, secrets) == {}
    assert await opened_events_with(service, secrets) == set()
    assert [t for t in await stream_texts(producer, whole=True) if any(s in t for s in secrets)] == []
    answers = await walk_get_routes(
        service,
        service.owner_headers(),
        {"customer_id": customer_id, "vehicle_id": vehicle_id},
        {
            "name": ["王"],
            "phone_prefix": ["135", "136", "137", "138", "139"],
            "plate": ["沪A12345"],
            "vin": [vin],
            "customer_id": [customer_id, first, second, "wo-customer-9"],
            "resource_id": [customer_id],
            "subject": ["amy", "olivia"],
            "tag": ["价格敏感"],
        },
    )
    assert leaks(answers, secrets) == []
    assert {a.status for a in answers if a.route == "/v1/customers/{customer_id}"} == {404}
    assert await inconsistencies(service) == []


async def test_an_erasure_before_the_relay_published_leaves_no_plaintext_outbox_row_and_nothing_in_the_stream(
    settings: CustomerProfileSettings, producer: Producer
) -> None:
    """The relay is held off (its leadership lock taken first): the customer's events wait in the outbox, in
    plaintext, when the erasure comes."""
    secrets = needles("王建国", "+8613812345678", "+8613900001111", "wx_wangjg", "只在周末来店")
    relay_held = AsyncExitStack()
    await relay_held.enter_async_context(
        holding(
            settings.database_url,
            "SELECT pg_advisory_xact_lock(%(key)s)",
            key=advisory_lock_key("outbox-relay:customer-profile"),
        )
    )
    try:
        async with serving(settings) as service:
            customer_id = await register_customer(service)
            assert set((await database_texts_with(service, secrets)).get("outbox.payload", ())) >= {
                "王建国",
                "wx_wangjg",
            }  # queued for the relay, in plaintext

            erased = await service.client.post(
                f"/v1/customers/{customer_id}/erasure", headers=service.owner_headers()
            )
            assert erased.status_code == 200, erased.text
            assert await database_texts_with(service, secrets) == {}

            await relay_held.aclose()  # the relay takes over and publishes what is left
            await eventually(scrubbed(service, erased.json()["erasure_request_id"]))
            await outbox_published(service)
            texts = await stream_texts(producer, whole=True)
            assert [t for t in texts if any(s in t for s in secrets)] == []
            assert [t for t in texts if CustomerErased.event_type in t] != []
            assert await database_texts_with(service, secrets) == {}
    finally:
        await relay_held.aclose()
