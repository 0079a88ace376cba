"""Chain-defined custom fields: the chain configures a schema once, every customer's values are checked
against it. Values travel as strings (the events carry `dict[str, str]`); the schema says how to read them."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum

from pitlane_platform.errors import InvalidInputError

_KEY = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


class CustomFieldType(StrEnum):
    TEXT = "text"
    NUMBER = "number"
    DATE = "date"
    CHOICE = "choice"


@dataclass(frozen=True)
class CustomFieldDefinition:
    key: str
    label: str
    type: CustomFieldType = CustomFieldType.TEXT
    required: bool = False
    choices: tuple[str, ...] = ()
    max_length: int = 200

    def __post_init__(self) -> None:
        if not _KEY.match(self.key):
            raise InvalidInputError(
                "key", f"{self.key!r}: lower-case letters, digits and _, starting with a letter"
            )
        if self.type is CustomFieldType.CHOICE and not self.choices:
            raise InvalidInputError(f"{self.key}.choices", "a choice field needs at least one choice")

    def check(self, value: str) -> str:
        """The value as stored (trimmed), or InvalidInputError naming `custom_fields.<key>`."""
        name = f"custom_fields.{self.key}"
        value = value.strip()
        if not value:
            raise InvalidInputError(name, "must not be blank")
        if len(value) > self.max_length:
            raise InvalidInputError(name, f"at most {self.max_length} characters")
        if self.type is CustomFieldType.NUMBER:
            try:
                float(value)
            except ValueError:
                raise InvalidInputError(name, f"{value!r} is not a number") from None
        elif self.type is CustomFieldType.DATE:
            try:
                date.fromisoformat(value)
            except ValueError:
                raise InvalidInputError(name, f"{value!r} is not a date (YYYY-MM-DD)") from None
        elif self.type is CustomFieldType.CHOICE and value not in self.choices:
            raise InvalidInputError(name, f"{value!r} is not one of {', '.join(self.choices)}")
        return value


@dataclass(frozen=True)
class CustomFieldSchema:
    fields: tuple[CustomFieldDefinition, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        keys = [definition.key for definition in self.fields]
        if duplicated := sorted({key for key in keys if keys.count(key) > 1}):
            raise InvalidInputError("fields", f"duplicate keys: {', '.join(duplicated)}")

    def validate(self, values: dict[str, str]) -> dict[str, str]:
        """The values as stored, checked against the schema: unknown keys, missing required ones and values
        that do not fit are refused, each naming the field."""
        by_key = {definition.key: definition for definition in self.fields}
        for key in values:
            if key not in by_key:
                known = ", ".join(sorted(by_key)) or "none are configured"
                raise InvalidInputError(f"custom_fields.{key}", f"not a custom field of this chain ({known})")
        for definition in self.fields:
            if definition.required and not values.get(definition.key, "").strip():
                raise InvalidInputError(f"custom_fields.{definition.key}", "is required")
        return {key: by_key[key].check(value) for key, value in values.items()}
