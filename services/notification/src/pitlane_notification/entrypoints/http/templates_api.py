"""The chain's templates: what each trigger sends on each channel and in each language (GET), the chain's
own text (PUT, checked by rendering it before it is saved), and a preview with the SMS segment count."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path
from pydantic import BaseModel, Field

from pitlane_events.types import Channel, Purpose
from pitlane_notification.adapters.templating import TemplateRenderError
from pitlane_notification.domain import sms
from pitlane_notification.entrypoints.http.common import ChainAdmin, Context, Reader
from pitlane_notification.service_layer.default_templates import DEFAULTS, SAMPLE_CONTEXT, TemplateText
from pitlane_notification.service_layer.requests import Trigger
from pitlane_notification.service_layer.templates import (
    UnknownTemplate,
    check_template,
    render_content,
    template_for,
)
from pitlane_platform.db import execute_on_driver, fetch_on_driver
from pitlane_platform.errors import InvalidInputError, NotFoundError

router = APIRouter(prefix="/v1/templates", tags=["templates"])

TemplateKey = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[a-z][a-z0-9_]*$")]
ChannelName = Literal["sms", "wechat", "email"]
Locale = Literal["zh-CN", "en"]
MAX_TEMPLATE_CHARS = 4000


class TemplateBody(BaseModel):
    subject: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    body: Annotated[str, Field(min_length=1, max_length=MAX_TEMPLATE_CHARS)]
    provider_template: (
        Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")] | None
    ) = None
    provider_parameters: Annotated[
        dict[
            Annotated[str, Field(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_]+$")],
            Annotated[str, Field(max_length=500)],
        ],
        Field(max_length=20),
    ] = Field(default_factory=dict)


class Template(TemplateBody):
    key: str
    channel: ChannelName
    locale: Locale
    built_in: bool
    updated_at: datetime | None = None
    updated_by: str | None = None


class TemplateList(BaseModel):
    templates: list[Template]


class PreviewRequest(BaseModel):
    key: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[a-z][a-z0-9_]*$")]
    channel: ChannelName
    locale: Locale = "zh-CN"
    purpose: Literal["service", "marketing"] = "service"
    # A draft to preview instead of the saved template.
    draft: TemplateBody | None = None
    # Values for the trigger's variables; the sample values fill the rest.
    variables: Annotated[
        dict[Annotated[str, Field(max_length=32)], Annotated[str, Field(max_length=500)]],
        Field(max_length=30),
    ] = Field(default_factory=dict)


class Preview(BaseModel):
    subject: str | None
    body: str
    provider_template: str | None
    parameters: dict[str, str]
    characters: int
    sms_segments: int | None  # for SMS: billed messages, the signature included


@router.get("")
async def list_templates(context: Context, principal: Reader) -> TemplateList:
    """Every (trigger, channel, locale): the chain's text where it wrote one, else the built-in one."""
    async with context.service.driver.transaction() as unit:
        rows = await fetch_on_driver(
            unit, "templates", "SELECT * FROM templates ORDER BY trigger, channel, locale", {}, as_dicts=True
        )
    own = {(row["trigger"], row["channel"], row["locale"]): row for row in rows}
    templates = [_own(row) for row in rows]
    for (trigger, locale), text in DEFAULTS.items():
        for channel in ("sms", "wechat", "email"):
            if (trigger.value, channel, locale) not in own:
                templates.append(_built_in(trigger.value, channel, locale, text))
    templates.sort(key=lambda t: (t.key, t.channel, t.locale))
    return TemplateList(templates=templates)


@router.put("/{key}/{channel}/{locale}")
async def save_template(
    key: TemplateKey,
    channel: ChannelName,
    locale: Locale,
    body: TemplateBody,
    context: Context,
    principal: ChainAdmin,
) -> Template:
    """The chain's own text for a trigger (or a campaign's template key) on one channel and in one language.
    It is rendered with the trigger's variables first: a template that does not render is a 422 naming the
    field, and nothing is saved."""
    text = TemplateText(body.subject, body.body, body.provider_template, dict(body.provider_parameters))
    try:
        check_template(key, text)
    except TemplateRenderError as error:
        raise InvalidInputError("body.body", str(error)) from None
    now = context.service.clock.now()
    async with context.service.driver.transaction() as unit:
        await execute_on_driver(
            unit,
            "save template",
            """
            INSERT INTO templates (trigger, channel, locale, subject, body, provider_template, provider_parameters,
                                   updated_at, updated_by)
            VALUES (%(key)s, %(channel)s, %(locale)s, %(subject)s, %(body)s, %(provider_template)s,
                    %(parameters)s::jsonb, %(at)s, %(by)s)
            ON CONFLICT (trigger, channel, locale) DO UPDATE SET subject = excluded.subject, body = excluded.body,
                provider_template = excluded.provider_template, provider_parameters = excluded.provider_parameters,
                updated_at = excluded.updated_at, updated_by = excluded.updated_by
            """,
            {
                "key": key,
                "channel": channel,
                "locale": locale,
                "subject": body.subject,
                "body": body.body,
                "provider_template": body.provider_template,
                "parameters": json.dumps(body.provider_parameters, ensure_ascii=False),
                "at": now,
                "by": principal.user_id,
            },
        )
    return Template(
        key=key,
        channel=channel,
        locale=locale,
        built_in=False,
        updated_at=now,
        updated_by=principal.user_id,
        **body.model_dump(),
    )


@router.post("/preview")
async def preview(request: PreviewRequest, context: Context, principal: Reader) -> Preview:
    """The message as a customer would get it, with sample values for the variables not given."""
    channel = Channel(request.channel)
    async with context.service.driver.transaction() as unit:
        if request.draft is not None:
            draft = request.draft
            text = TemplateText(
                draft.subject, draft.body, draft.provider_template, dict(draft.provider_parameters)
            )
        else:
            try:
                text = await template_for(unit, request.key, channel, request.locale)
            except UnknownTemplate as error:
                raise NotFoundError(str(error)) from None
    try:
        trigger = Trigger(request.key)
    except ValueError:
        trigger = Trigger.CAMPAIGN
    variables: dict[str, Any] = {**SAMPLE_CONTEXT[trigger], **request.variables}
    try:
        content = render_content(text, variables, channel=channel, purpose=Purpose(request.purpose))
    except TemplateRenderError as error:
        raise InvalidInputError("body.draft.body" if request.draft else "body.key", str(error)) from None
    as_sent = sms.with_signature(context.service.sms_sign_name, content.body)
    return Preview(
        subject=content.subject,
        body=content.body,
        provider_template=content.provider_template,
        parameters=content.parameters,
        characters=len(as_sent) if channel is Channel.SMS else len(content.body),
        sms_segments=sms.segments(as_sent) if channel is Channel.SMS else None,
    )


def _own(row: dict[str, Any]) -> Template:
    return Template(
        key=row["trigger"],
        channel=row["channel"],
        locale=row["locale"],
        built_in=False,
        subject=row["subject"],
        body=row["body"],
        provider_template=row["provider_template"],
        provider_parameters=row["provider_parameters"],
        updated_at=row["updated_at"],
        updated_by=row["updated_by"],
    )


def _built_in(key: str, channel: str, locale: str, text: TemplateText) -> Template:
    return Template(
        key=key,
        channel=channel,  # type: ignore[arg-type]
        locale=locale,  # type: ignore[arg-type]
        built_in=True,
        subject=text.subject,
        body=text.body,
        provider_template=text.provider_template,
        provider_parameters=text.provider_parameters,
    )
