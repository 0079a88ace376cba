"""Privacy and security asserted on the whole: every customer-link route with another order's ids, every
change to a link's token, every GET route a masked role may call (walked from the OpenAPI document, not a
list of ours), and after an erasure every text, JSON and byte column of the database and every message of
the streams workorder scrubs."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import nats
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from workorder_harness import (
    BRANCH,
    PROFILE_STREAM,
    Harness,
    directory_consumed_through,
    publish_from_profile,
    rows,
)

from pitlane_events.customer_profile import (
    CustomerErased,
    CustomerRegistered,
    CustomersMerged,
    CustomerSource,
)
from pitlane_events.workorder import CustomerIntroduced
from pitlane_platform.errors import ForbiddenError
from pitlane_platform.security.links import (
    Attribution,
    AttributionKind,
    CustomerLink,
    sign_attribution,
    sign_link,
    verify_link,
)
from pitlane_workorder.adapters import erasure
from platform_flow import stream_messages

DAY = "2026-11-16"
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"order B's timing belt" * 40
B64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def operations(app: Any, *, method: str, under: str) -> list[tuple[str, dict[str, Any]]]:
    """(path template, operation) of every `method` route in the app's OpenAPI document under `under`."""
    return [
        (path, operation)
        for path, methods in app.openapi()["paths"].items()
        for name, operation in methods.items()
        if name == method and path.startswith(under)
    ]


def fill(path: str, operation: dict[str, Any], values: dict[str, str]) -> tuple[str, dict[str, str]]:
    """The path with its parameters, and the required query parameters: a KeyError names a parameter a new
    route added that the test has no value for."""
    query = {}
    for parameter in operation.get("parameters", []):
        if parameter["in"] == "path":
            path = path.replace("{" + parameter["name"] + "}", values[parameter["name"]])
        elif parameter["in"] == "query" and parameter.get("required"):
            query[parameter["name"]] = values[parameter["name"]]
    return path, query


async def walk_in_with(h: Harness, complaint: str) -> str:
    response = await h.post(
        f"/v1/branches/{BRANCH}/work-orders",
        {
            "customer_id": "c-9",
            "vehicle_id": "v-9",
            "plate": "沪B54321",
            "mileage_km": 1,
            "complaint": complaint,
        },
    )
    assert response.status_code == 201, response.text
    return str(response.json()["work_order_id"])


async def with_add_on(h: Harness, order: str, item: str, *, photos: tuple[str, ...] = ()) -> tuple[str, int]:
    await h.command(order, "technicians", {"technician_id": "tom"})
    proposed = await h.command(
        order,
        "add-ons",
        {
            "item": item,
            "category": "parts",
            "price_fen": 9_900,
            "reason": f"{item}的原因",
            "photo_hashes": photos,
        },
    )
    assert proposed.status_code == 200, proposed.text
    return proposed.json()["add_on_id"], proposed.json()["estimate_revision"]


async def page_of(h: Harness, order: str) -> str:
    link = await h.post(h.order_path(order, "customer-link"))
    assert link.status_code == 201, link.text
    return str(link.json()["path"]).removeprefix("/c/")


async def pending_add_ons(h: Harness, order: str) -> list[str | None]:
    return [add_on["decision"] for add_on in (await h.get(h.order_path(order))).json()["add_ons"]]


async def test_a_link_of_one_order_reaches_nothing_of_another_on_any_customer_route(branch: Harness) -> None:
    """Guards: the page's media check (`content_hash not in order.media_hashes`), the add-on looked up on the
    link's own order, and the branch the link names checked against the order's."""
    h = branch
    order_a = await walk_in_with(h, "A的空调")
    await with_add_on(h, order_a, "A的滤芯")
    token_a = await page_of(h, order_a)
    photo_b = await h.upload(JPEG)
    order_b = await walk_in_with(h, "B的秘密投诉")
    assert (await h.command(order_b, "technicians", {"technician_id": "tom"})).status_code == 200
    progress = await h.command(
        order_b, "progress", {"text": "B的维修记录", "attachments": [photo_b]}, role="technician", sub="tom"
    )
    assert progress.status_code == 200, progress.text
    add_on_b, revision_b = await with_add_on(h, order_b, "B的正时皮带", photos=(photo_b,))
    token_b = await page_of(h, order_b)
    # What order B's page shows, and its file: none of it may reach a request made with A's link.
    b_only = (
        "B的秘密投诉",
        "B的维修记录",
        "B的正时皮带",
        add_on_b,
        photo_b,
        order_b,
        "order B's timing belt",
    )
    page_b = await h.client.get(f"/c/{token_b}/media/{photo_b}")
    assert page_b.status_code == 200 and page_b.content == JPEG  # B's own link does serve it
    # A's order under a branch it is not at, signed with the real secret: the branch a link names must be
    # its order's.
    elsewhere = sign_link(
        h.settings.link_secret.get_secret_value(),
        CustomerLink(order_a, "b2", h.clock.now() + timedelta(days=1)),
    )
    before = await h.counts()

    customer_routes = [
        (path, operation, method)
        for method in ("get", "post")
        for path, operation in operations(h.service.app, method=method, under="/c/")
    ]
    booking_pages = ("/c/appointments/", "/c/waitlist/")
    order_routes = [route for route in customer_routes if not route[0].startswith(booking_pages)]
    assert len(order_routes) == 4, customer_routes  # the page, its file, approve and decline
    # An appointment's and an offer's pages and forms take links of their own use: an order's link is a 403
    # there (a 422 first where the form lacks its field).
    assert len(customer_routes) == len(order_routes) + 5, customer_routes
    values = {"add_on_id": add_on_b, "content_hash": photo_b}
    seen = []
    for path, operation, method in customer_routes:
        for token, refused in ((token_a, {404}), (elsewhere, {404})):
            url, query = fill(path, operation, {**values, "token": token})
            if method == "get":
                response = await h.client.get(url, params=query)
            else:
                response = await h.client.post(url, params=query, data={"estimate_revision_seen": revision_b})
            seen.append((path, token is token_a, response.status_code))
            if path == "/c/{token}" and token is token_a:
                assert response.status_code == 200  # A's own page, without anything of B's
            elif path.startswith(booking_pages):
                assert response.status_code in (403, 422), (path, response.status_code, response.text[:200])
            else:
                assert response.status_code in refused, (path, response.status_code, response.text[:200])
            for secret in b_only:
                assert secret not in response.text, (path, secret)
            assert b"order B's timing belt" not in response.content, path

    assert await h.counts() == before
    assert await pending_add_ons(h, order_b) == [None]
    assert await pending_add_ons(h, order_a) == [None]
    assert len(seen) == 2 * len(customer_routes)


def token_variants(token: str) -> list[str]:
    """Every token one change away from `token`: each character replaced by another, each removed, the token
    cut short at each length, padded, extended, its parts swapped, doubled or emptied."""
    payload, signature = token.split(".")
    variants = set()
    for index, character in enumerate(token):
        replacement = "A" if character == "." else B64URL[(B64URL.index(character) + 1) % len(B64URL)]
        variants.add(token[:index] + replacement + token[index + 1 :])
        variants.add(token[:index] + token[index + 1 :])
    variants |= {token[:length] for length in range(len(token))}
    variants |= {
        token + "A",
        token + "=",
        token + ".",
        payload + "=." + signature,
        payload + "." + signature + "==",
        signature + "." + payload,
        payload,
        payload + ".",
        "." + signature,
        payload + ".." + signature,
        payload + "." + signature + "." + signature,
        payload.swapcase() + "." + signature,
        payload + "." + signature.swapcase(),
    }
    variants.discard(token)
    return sorted(variants)


def re_signed(token: str, secret: str, **changes: Any) -> str:
    """The token's payload with `changes`, signed with `secret`."""
    payload = token.split(".")[0]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return sign_link(
        secret,
        CustomerLink(
            changes.get("wo", claims["wo"]),
            changes.get("br", claims["br"]),
            datetime.fromtimestamp(changes.get("exp", claims["exp"]), UTC),
            changes.get("gen", claims["gen"]),
        ),
    )


async def test_every_change_to_a_links_token_is_refused_and_changes_nothing(branch: Harness) -> None:
    """Guard: the HMAC over the whole payload string, compared over the whole signature (links.py)."""
    h = branch
    order = await walk_in_with(h, "异响")
    add_on, revision = await with_add_on(h, order, "更换刹车片")
    token = await page_of(h, order)
    secret = h.settings.link_secret.get_secret_value()
    variants = token_variants(token)
    variants += [
        re_signed(token, "another-chains-link-secret-of-32-bytes-or-more", gen=0),
        # A link of this chain for a use it was not signed for: an attribution token.
        sign_attribution(
            secret, Attribution(AttributionKind.CAMPAIGN, order, h.clock.now() + timedelta(days=1))
        ),
        # Revoked (generation 1 is not yet the order's) and expired, both properly signed.
        re_signed(token, secret, gen=1),
        re_signed(token, secret, exp=int(h.clock.now().timestamp())),
    ]
    assert len(variants) > 3 * len(token)
    before = await h.counts()

    # An instance whose per-client limit on public routes lets one client try them all.
    async with h.instance(public_rate_limit="100000/minute") as client:
        for variant in variants:
            await refused_without_a_trace(client, variant, add_on, revision)

    assert await h.counts() == before
    assert await pending_add_ons(h, order) == [None]
    assert (await h.client.get(f"/c/{token}")).status_code == 200  # the link itself still works


async def refused_without_a_trace(
    client: httpx.AsyncClient, variant: str, add_on: str, revision: int
) -> None:
    for response in (
        await client.get(f"/c/{variant}"),
        await client.post(
            f"/c/{variant}/add-ons/{add_on}/approve", data={"estimate_revision_seen": revision}
        ),
    ):
        # The empty token names no page route at all (404); every other one is a refused link.
        assert response.status_code == (403 if variant else 404), (variant, response.status_code)
        assert "更换刹车片" not in response.text, variant


LINK_SECRET = "workorder-test-link-secret-of-32-bytes-or-more"
NOW = datetime(2026, 11, 16, tzinfo=UTC)
VALID = sign_link(LINK_SECRET, CustomerLink("wo-1", BRANCH, NOW + timedelta(hours=72)))


@st.composite
def mutated(draw: st.DrawFn, token: str) -> str:
    """`token` after one to four random edits: a character replaced, inserted or removed."""
    text = token
    for _ in range(draw(st.integers(1, 4))):
        index = draw(st.integers(0, len(text)))
        character = draw(st.sampled_from(B64URL + ".="))
        edit = draw(st.sampled_from(["replace", "insert", "remove"]))
        if edit == "insert" or index == len(text):
            text = text[:index] + character + text[index:]
        elif edit == "replace":
            text = text[:index] + character + text[index + 1 :]
        else:
            text = text[:index] + text[index + 1 :]
    return text


@settings(max_examples=2_000, deadline=None, database=None)  # no example files in the tree
@given(st.one_of(mutated(VALID), st.text(st.characters(exclude_categories=["Cs"]), max_size=200)))
def test_no_token_but_the_signed_one_verifies(token: str) -> None:
    assert verify_link(LINK_SECRET, VALID, NOW).work_order_id == "wo-1"
    if token == VALID:
        return
    with pytest.raises(ForbiddenError):
        verify_link(LINK_SECRET, token, NOW)


# Masked roles read none of what is masked from them, in any answer of any GET route ------------------------

NAME = "欧阳春花"
PHONE_TYPED = "139 8765 4321"
FULL_PHONE = ("13987654321", "+8613987654321", "8613987654321", PHONE_TYPED, "139-8765-4321")
OTHER_NAME, OTHER_PHONE = "司马秋月", ("13765432109", "+8613765432109", "137 6543 2109")
MASKED = ("139****4321", "137****2109")


async def a_day_with_personal_data(h: Harness) -> dict[str, str]:
    """A booking and its arrival, someone else on the waitlist of the full day and then walking in, a
    photo: the values every GET route is called with."""
    one_a_day = await h.client.put(
        f"/v1/branches/{BRANCH}/booking-rules", json={"max_per_day": 1}, headers=h.auth("manager", sub="max")
    )
    assert one_a_day.status_code == 204, one_a_day.text
    booked = await h.book(9, online=True, customer_name=NAME, phone=PHONE_TYPED, plate="沪A99X88")
    assert booked.status_code == 201, booked.text
    waiting = await h.book(10, customer_name=OTHER_NAME, phone=OTHER_PHONE[0], plate="沪C77M66")
    assert waiting.status_code == 409, waiting.text
    joined = await h.client.post(
        f"/v1/public/branches/{BRANCH}/waitlist",
        json={
            "slot_start": "2026-11-16T10:00:00+08:00",
            "customer_name": OTHER_NAME,
            "phone": OTHER_PHONE[0],
            "plate": "沪C77M66",
            "service_requested": "空调",
        },
    )
    assert joined.status_code == 201, joined.text
    arrived = await h.post(
        f"/v1/branches/{BRANCH}/appointments/{booked.json()['appointment_id']}/arrival",
        {"brand": "大众", "model": "朗逸", "mileage_km": 42_000, "complaint": "刹车异响"},
    )
    assert arrived.status_code == 201, arrived.text
    walk_in = await h.post(
        f"/v1/branches/{BRANCH}/work-orders",
        {
            "customer_name": OTHER_NAME,
            "phone": OTHER_PHONE[2],
            "plate": "沪C77M66",
            "brand": "本田",
            "model": "雅阁",
            "mileage_km": 10_000,
            "complaint": "空调",
        },
    )
    assert walk_in.status_code == 201, walk_in.text
    # Version 1 of the chain's and the branch's process definitions, for the routes that read a version.
    for path, role in (
        ("/v1/process-definition", "owner"),
        (f"/v1/branches/{BRANCH}/process-definition", "manager"),
    ):
        defined = await h.client.put(path, json={}, headers=h.auth(role, sub="max"))
        assert defined.status_code == 200, defined.text
    return {
        "branch_id": BRANCH,
        "staff_id": "tom",
        "version": "1",
        "work_order_id": arrived.json()["work_order_id"],
        "content_hash": await h.upload(JPEG),
        "on": DAY,
        "from": DAY,
        "to": DAY,
    }


async def every_get_answer(h: Harness, role: str, values: dict[str, str]) -> dict[str, httpx.Response]:
    """The answer of every staff and public GET route of the OpenAPI document, to a token of `role`."""
    headers = h.auth(role, sub=f"{role}-1")
    answers = {}
    for path, operation in operations(h.service.app, method="get", under="/"):
        if path.startswith("/c/"):
            continue  # the customer's own pages, behind the link, not a role
        url, query = fill(path, operation, values)
        answers[path] = await h.client.get(url, params=query, headers=headers)
    return answers


def hits(answers: dict[str, httpx.Response], needles: tuple[str, ...]) -> list[str]:
    found = []
    for path, answer in answers.items():
        body = answer.content.decode("utf-8", errors="replace")
        # JSON may spell non-ASCII text as \u escapes: read it back too.
        if answer.headers.get("content-type", "").endswith("json"):
            body += json.dumps(answer.json(), ensure_ascii=False)
        found += [f"{path}: {needle}" for needle in needles if needle in body]
    return found


@pytest.mark.parametrize(
    ("role", "masked_from_it", "refused"),
    [
        ("technician", FULL_PHONE + OTHER_PHONE, {"/v1/audit"}),
        (
            "analyst",
            (NAME, OTHER_NAME, *FULL_PHONE, *OTHER_PHONE, *MASKED),
            {"/v1/audit", "/v1/media/{content_hash}"},
        ),
    ],
)
async def test_a_masked_role_reads_nothing_masked_from_it_in_any_get_answer(
    branch: Harness, role: str, masked_from_it: tuple[str, ...], refused: set[str]
) -> None:
    """Guards: the technician's masked phones and the analyst's nulled names and phones, on every route that
    has them (appointments, board, detail), and none of the others leaking them unguarded."""
    values = await a_day_with_personal_data(branch)

    answers = await every_get_answer(branch, role, values)

    assert {path for path, answer in answers.items() if answer.status_code == 403} == refused
    assert all(answer.status_code in (200, 403) for answer in answers.values()), {
        path: answer.status_code for path, answer in answers.items()
    }
    assert hits(answers, masked_from_it) == []
    # The same walk as the front desk does meet all of it: the routes above were not empty of it.
    desk = await every_get_answer(branch, "advisor", values)
    assert {path for path, answer in desk.items() if answer.status_code == 403} == {"/v1/audit"}
    at_the_desk = {needle for needle in (NAME, OTHER_NAME, FULL_PHONE[1]) if needle in masked_from_it}
    assert FULL_PHONE[1] in at_the_desk
    assert at_the_desk <= {hit.split(": ", 1)[1] for hit in hits(desk, masked_from_it)}


# Erasure reaches every column and every message -------------------------------------------------------------

NEEDLES = (NAME, json.dumps(NAME)[1:-1], OTHER_NAME, json.dumps(OTHER_NAME)[1:-1], *FULL_PHONE, *OTHER_PHONE)
SCANNED_TYPES = ("text", "character varying", "character", "json", "jsonb", "bytea", "ARRAY")


def as_text(value: Any) -> str:
    if isinstance(value, memoryview):
        value = bytes(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


async def personal_data_in_database(h: Harness) -> tuple[list[str], set[str]]:
    """(`table.column: needle` for each value holding a needle, every column scanned)."""
    columns = await rows(
        h,
        "SELECT table_name, column_name FROM information_schema.columns"
        " WHERE table_schema = 'public' AND data_type = ANY(%s) ORDER BY table_name, column_name",
        list(SCANNED_TYPES),
    )
    found = []
    for table, column in columns:
        for (value,) in await rows(h, f'SELECT "{column}" FROM "{table}" WHERE "{column}" IS NOT NULL'):
            found += [f"{table}.{column}: {needle}" for needle in NEEDLES if needle in as_text(value)]
    return found, {f"{table}.{column}" for table, column in columns}


async def personal_data_in_streams(h: Harness) -> list[str]:
    """`stream#seq: needle` for each message of workorder's streams (its own, dead letters, replays) holding
    a needle; customer-profile's stream is customer-profile's to scrub (this test publishes to it as
    customer-profile)."""
    connection = await nats.connect(h.settings.nats_url)
    try:
        js = connection.jetstream()
        found = []
        for stream in await js.streams_info():
            if stream.config.name == PROFILE_STREAM or not stream.state.messages:
                continue
            for message in await stream_messages(js, stream.config.name):
                text = as_text(message.data or b"") + json.dumps(message.headers or {}, ensure_ascii=False)
                found += [f"{stream.config.name}#{message.seq}: {n}" for n in NEEDLES if n in text]
        return found
    finally:
        await connection.close()


async def test_after_erasure_no_column_of_any_table_and_no_message_holds_the_customer(
    branch: Harness,
) -> None:
    """Guards: adapters/erasure.py (the appointments, the board, the directory, the introductions in the
    event store and the outbox, the duplicates merged into the customer) and the scrub of the stream's copies
    in the customer-directory consumer."""
    h = branch
    await a_day_with_personal_data(h)
    # branch + 3 staff; booked (customer introduced), arrived (car introduced, opened); walk-in (customer and
    # car introduced, opened)
    published = await h.published(at_least=12)
    introduced = [e.data for e in published if isinstance(e.data, CustomerIntroduced)]
    [customer, duplicate] = [i.customer_id for i in introduced]
    found, scanned = await personal_data_in_database(h)
    assert {"appointments.customer_name", "appointments.phone", "work_orders.customer_name"} <= scanned
    assert {"events.envelope", "outbox.payload", "directory_phones.phone"} <= scanned
    assert any(hit.startswith("appointments.customer_name") for hit in found)  # there is something to erase
    assert await personal_data_in_streams(h)

    # customer-profile adopts the first, merges the second (the same person) into it, then erases them.
    erased = await publish_from_profile(
        h,
        (
            CustomerRegistered(
                customer_id=customer,
                full_name=NAME,
                phone=FULL_PHONE[1],
                source=CustomerSource.ONLINE_BOOKING,
            ),
            customer,
            1,
        ),
        (CustomersMerged(surviving_customer_id=customer, merged_customer_ids=(duplicate,)), customer, 2),
        (CustomerErased(customer_id=customer, erasure_request_id="er-1"), customer, 3),
    )
    await directory_consumed_through(h, erased)

    assert await rows(
        h, "SELECT 1 FROM directory_customers WHERE customer_id = %s AND erased_at IS NOT NULL", customer
    )
    assert (await personal_data_in_database(h))[0] == []
    assert await personal_data_in_streams(h) == []
    # What is not personal stays: the visit and the car, under the anonymous id.
    assert await rows(h, "SELECT 1 FROM work_orders WHERE customer_id = %s AND plate = '沪A99X88'", customer)


async def test_an_introduction_not_yet_published_leaves_the_outbox_with_the_erasure(
    api_only: Harness,
) -> None:
    """Guard: the erasure drops the introductions' outbox rows (erasure.forget_customer), which hold the
    name and phone until the relay has published them — here it never runs, as in an API-only process whose
    worker is behind."""
    h = api_only
    await h.open_branch()
    booked = await h.book(9, online=True, customer_name=NAME, phone=PHONE_TYPED, plate="沪A99X88")
    assert booked.status_code == 201, booked.text
    [(customer,)] = await rows(h, "SELECT customer_id FROM appointments")
    found, _ = await personal_data_in_database(h)
    assert any(hit.startswith("outbox.payload") for hit in found), found

    async with h.service.runtime.driver.transaction() as unit:
        await erasure.forget_customer(unit, customer, h.clock.now())

    assert (await personal_data_in_database(h))[0] == []
    assert await rows(h, "SELECT 1 FROM outbox WHERE published_at IS NULL")  # the branch's events still go
