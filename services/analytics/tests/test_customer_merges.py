"""Customer merges written many at once (a batch of CustomersMerged, as a rebuild applies them) leave the
aliases the same merges leave one at a time, in the same order, as the live consumer writes them, and both
equal the aliases worked out here by the rule — for random chains of merges: survivors merged away later, ids
merged twice, a survivor named among its merged ids, and batches split anywhere. Against the test's own real
PostgreSQL database, migrated."""

from __future__ import annotations

import asyncio
from itertools import pairwise

from hypothesis import given, settings
from hypothesis import strategies as st

from pitlane_analytics.adapters.facts import CustomerMerge, merge_customers
from pitlane_analytics.bootstrap import MIGRATIONS
from pitlane_platform.db import DriverPool, execute_on_driver, fetch_on_driver
from pitlane_platform.migrations import upgrade

CUSTOMERS = [f"c{number}" for number in range(7)]

merges = st.lists(
    st.tuples(st.sampled_from(CUSTOMERS), st.lists(st.sampled_from(CUSTOMERS), min_size=1, max_size=3)),
    min_size=1,
    max_size=12,
).map(
    lambda drawn: [
        CustomerMerge(survivor, tuple(merged), f"e{number}")
        for number, (survivor, merged) in enumerate(drawn)
    ]
)


def by_the_rule(drawn: list[CustomerMerge]) -> list[tuple[str, str, str]]:
    """Each merge: its survivor resolved, every alias pointing at a merged id moved to it, each merged id an
    alias of it (keeping the event that first made it one)."""
    aliases: dict[str, tuple[str, str]] = {}
    for merge in drawn:
        survivor = aliases.get(merge.surviving, (merge.surviving, ""))[0]
        others = {customer for customer in merge.merged if customer != survivor}
        for alias, (surviving, event_id) in list(aliases.items()):
            if surviving in others:
                aliases[alias] = (survivor, event_id)
        for customer in others:
            aliases[customer] = (survivor, aliases.get(customer, ("", merge.event_id))[1])
    return sorted((alias, surviving, event_id) for alias, (surviving, event_id) in aliases.items())


async def aliases_after(driver: DriverPool, batches: list[list[CustomerMerge]]) -> list[tuple[str, str, str]]:
    async with driver.transaction() as unit:
        await execute_on_driver(unit, "empty aliases", "TRUNCATE customer_aliases", {})
    for batch in batches:
        async with driver.transaction() as unit:
            await merge_customers(unit, batch)
    async with driver.transaction() as unit:
        rows = await fetch_on_driver(
            unit,
            "aliases",
            "SELECT merged_customer_id, surviving_customer_id, event_id FROM customer_aliases ORDER BY 1",
            {},
        )
    return [tuple(row) for row in rows]


async def test_merges_written_in_batches_leave_the_aliases_one_at_a_time_leaves(database_url: str) -> None:
    await asyncio.to_thread(upgrade, database_url, MIGRATIONS)
    driver = DriverPool(database_url, max_size=1)
    await driver.open()
    loop = asyncio.get_running_loop()
    chains = 0

    @settings(max_examples=60, deadline=None, database=None)  # no example files in the tree
    @given(drawn=merges, cuts=st.lists(st.integers(1, 11), max_size=3))
    def check(drawn: list[CustomerMerge], cuts: list[int]) -> None:
        nonlocal chains

        async def example() -> None:
            nonlocal chains
            one_at_a_time = await aliases_after(driver, [[merge] for merge in drawn])
            assert one_at_a_time == by_the_rule(drawn)
            bounds = sorted({0, len(drawn), *(cut for cut in cuts if cut < len(drawn))})
            batches = [drawn[start:end] for start, end in pairwise(bounds)]
            assert await aliases_after(driver, batches) == one_at_a_time, batches
            merged = {row[0] for row in one_at_a_time}
            chains += any(merge.surviving in merged for merge in drawn)

        asyncio.run_coroutine_threadsafe(example(), loop).result()

    try:
        await asyncio.to_thread(check)
    finally:
        await driver.close()
    assert chains, "no example merged a survivor away: the chains went untested"
