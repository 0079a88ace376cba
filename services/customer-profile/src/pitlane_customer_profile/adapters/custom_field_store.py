"""The chain's custom-field schema, stored as one row of JSON."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from pitlane_customer_profile.adapters.tables import custom_field_schema
from pitlane_customer_profile.domain.custom_fields import (
    CustomFieldDefinition,
    CustomFieldSchema,
    CustomFieldType,
)


async def load_schema(session: AsyncSession) -> CustomFieldSchema:
    stored = await session.scalar(select(custom_field_schema.c.fields))
    if not stored:
        return CustomFieldSchema()
    return CustomFieldSchema(
        tuple(
            CustomFieldDefinition(
                key=f["key"],
                label=f["label"],
                type=CustomFieldType(f["type"]),
                required=f["required"],
                choices=tuple(f["choices"]),
                max_length=f["max_length"],
            )
            for f in stored
        )
    )


async def save_schema(session: AsyncSession, schema: CustomFieldSchema, *, at: datetime) -> None:
    fields = [
        {
            "key": d.key,
            "label": d.label,
            "type": d.type.value,
            "required": d.required,
            "choices": list(d.choices),
            "max_length": d.max_length,
        }
        for d in schema.fields
    ]
    statement = pg_insert(custom_field_schema).values(id=1, fields=fields, updated_at=at)
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=[custom_field_schema.c.id], set_={"fields": fields, "updated_at": at}
        )
    )
