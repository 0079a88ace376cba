"""How much one command may carry: the bounds the request models enforce at the edge (a 422 naming the field).

Every command becomes events, and an event must fit one message on the bus: a request too big to publish has
to be refused before anything is stored, not accepted and then stuck in the outbox. The limits are far above
what a branch ever enters, and low enough that the largest event a command produces (BranchOpened,
WorkOrderOpened, WorkOrderSettled; every field at its limit, every character a 3-byte CJK one) stays under
`EVENT_BUDGET_BYTES`, well below the 64 KB a message may have (tests/test_limits.py checks it). The event
schemas allow more; the edge is stricter.
"""

from __future__ import annotations

from datetime import timedelta

EVENT_BUDGET_BYTES = 48 * 1024
"""The encoded size (JSON, UTF-8) the largest event a command can produce stays under."""

NAME_LENGTH = 100
"""A branch's, staff member's or customer's name."""
ADDRESS_LENGTH = 200
TEXT_LENGTH = 2000
"""Free text: a complaint, progress, a reason, a note, the service asked for."""
CODE_LENGTH = 32
"""A catalogue item code (ours or the maker's part number)."""
ITEM_NAME_LENGTH = 50
"""What a bill line, an add-on or an inspection point is: 更换前刹车片, 左前轮胎."""
MAX_FEN = 10_000_000_000
"""Any amount of money: 100 million yuan, in fen."""
MAX_REVISION = 1_000_000
"""An estimate revision a client quotes back: far beyond any work order's, within PostgreSQL's integer."""

MAX_OPENING_PERIODS = 21
"""Opening periods of a branch's week: up to three a day."""
MAX_BAYS = 100
BAY_NAME_LENGTH = 50

MAX_PHOTOS = 20
"""Photos or videos one command attaches (check-in, progress, an add-on)."""
MAX_INSPECTION_POINTS = 40
"""Points of the check-in inspection (环车检查)."""
INSPECTION_NOTE_LENGTH = 100
MAX_PHOTOS_PER_INSPECTION_POINT = 3

MAX_QUALITY_CHECK_REASONS = 20
QUALITY_CHECK_REASON_LENGTH = 200

MAX_LINE_ITEMS = 80
"""Lines of one bill (WorkOrderSettled and WorkOrderCompleted carry them all)."""
MAX_DISCOUNTS = 10
DISCOUNT_DESCRIPTION_LENGTH = 100
MAX_PAYMENTS = 10
"""Payments of one bill (split between methods)."""

# The booking calendar (ADR 25).
MAX_SHIFTS_PER_DAY = 200
"""Shifts of one branch's day."""
MAX_BREAKS = 4
"""Breaks in one shift."""
MAX_LEAVE = timedelta(days=366)
"""One period of leave."""
MAX_RULE_MINUTES = 30 * 24 * 60
"""A notice, a hold or a confirmation deadline: at most 30 days."""
MAX_BUFFER_MINUTES = 240
MAX_DAYS_AHEAD = 366
MAX_DAILY_CAP = 10_000
MAX_SERVICE_CAPS = 50
"""Services one scope caps per day."""
MAX_CALENDAR_DATES = 400
"""Holidays and make-up working days one scope lists: a year of them and more."""
