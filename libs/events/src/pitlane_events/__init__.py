"""Pitlane's published language: every domain event, its envelope, versions and NATS mapping."""

# Importing the producer modules registers every published event in REGISTRY.
from pitlane_events import analytics, customer_profile, notification, reminder, workorder
from pitlane_events.codec import NatsMessage, decode, decode_json, encode
from pitlane_events.envelope import (
    Actor,
    Envelope,
    new_event_id,
    stream_name,
    stream_subjects,
    subject_for,
)
from pitlane_events.errors import EventError, MalformedEvent, UnknownEventType
from pitlane_events.model import DomainEvent, event
from pitlane_events.registry import REGISTRY, EventRegistry, upcaster

__all__ = [
    "REGISTRY",
    "Actor",
    "DomainEvent",
    "Envelope",
    "EventError",
    "EventRegistry",
    "MalformedEvent",
    "NatsMessage",
    "UnknownEventType",
    "analytics",
    "customer_profile",
    "decode",
    "decode_json",
    "encode",
    "event",
    "new_event_id",
    "notification",
    "reminder",
    "stream_name",
    "stream_subjects",
    "subject_for",
    "upcaster",
    "workorder",
]
