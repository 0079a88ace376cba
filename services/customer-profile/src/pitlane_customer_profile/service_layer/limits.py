"""How much one command may carry: the bounds the request models enforce at the edge (a 422 naming the field).

Every command becomes events, and an event must fit one message on the bus: a request too big to publish has
to be refused before anything is stored, not accepted and then stuck in the outbox. The limits are far above
what a shop ever types, and low enough that the largest CustomerRegistered or CustomerUpdated (every field at
its limit, every character a 3-byte CJK one) stays under `EVENT_BUDGET_BYTES`, well below the 64 KB a
message may have (tests/test_limits.py checks it). The event schemas allow more; the edge is stricter.
"""

from __future__ import annotations

from pitlane_events.types import Channel, Purpose

EVENT_BUDGET_BYTES = 48 * 1024
"""The encoded size (JSON, UTF-8) the largest event a command can produce stays under."""

ID_LENGTH = 64
"""An id the client names (branch, referrer, owner, duplicate): as long as the events' ids may be."""
NAME_LENGTH = 100
"""A person's full name."""
TAG_LENGTH = 64
"""A tag, membership tier or policy number (the events' `Code`)."""
SHORT_TEXT_LENGTH = 200
"""A brand, model, insurer or WeChat id."""
LONG_TEXT_LENGTH = 2000
"""Staff notes, a merge reason."""

MAX_OTHER_PHONES = 10
"""Phones besides the primary one."""
MAX_TAGS = 50
MAX_PREFERRED_SERVICES = 50
PREFERRED_SERVICE_LENGTH = 64
"""A service's name, e.g. 小保养 or 四轮定位."""
MAX_CONSENTS = len(Channel) * len(Purpose)
"""One decision per channel and purpose."""
MAX_INSURANCE_POLICIES = 10
"""Policies one command records (a vehicle has one per coverage: compulsory and commercial)."""
MAX_MERGED_CUSTOMERS = 20
"""Duplicates folded into one customer at once."""

MAX_CUSTOM_FIELDS = 30
"""Fields in the chain's custom-field schema, hence keys in a customer's custom fields."""
CUSTOM_FIELD_KEY_LENGTH = 64
"""As the schema's key pattern allows."""
CUSTOM_FIELD_LABEL_LENGTH = 100
CUSTOM_FIELD_VALUE_LENGTH = 200
"""A custom field's value, a choice, and the most a field's own `max_length` may allow."""
MAX_CUSTOM_FIELD_CHOICES = 50

MAX_PAGE_SIZE = 100
"""Search hits per page."""
MAX_PROFILE_READS_PAGE_SIZE = 500
"""Access-log rows per page: owners page through it for audits."""
MAX_PAGE_OFFSET = 10_000
"""How deep offset paging goes: past this, narrow the search (PostgreSQL still reads every skipped row)."""
