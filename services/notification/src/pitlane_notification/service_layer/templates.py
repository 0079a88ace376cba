"""Which text a message gets, and rendering it for its channel.

A chain's own template for (key, channel, locale) wins; then its template for the key on that channel in
the default locale; then Pitlane's built-in text for the trigger (default_templates.py). A campaign names a
template key of the chain's own.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pitlane_events.types import Channel, Purpose
from pitlane_notification.adapters.templating import TemplateRenderError, render
from pitlane_notification.domain import sms
from pitlane_notification.service_layer.default_templates import (
    DEFAULT_LOCALE,
    DEFAULTS,
    SAMPLE_CONTEXT,
    TemplateText,
)
from pitlane_notification.service_layer.requests import Trigger
from pitlane_platform.db import Unit, fetch_on_driver


@dataclass(frozen=True)
class Content:
    subject: str | None
    body: str
    provider_template: str | None
    parameters: dict[str, str]


class UnknownTemplate(LookupError):
    pass


async def template_for(unit: Unit, key: str, channel: Channel, locale: str) -> TemplateText:
    rows = await fetch_on_driver(
        unit,
        "template",
        """
        SELECT locale, subject, body, provider_template, provider_parameters FROM templates
        WHERE trigger = %(key)s AND channel = %(channel)s AND locale = ANY(%(locales)s)
        """,
        {"key": key, "channel": channel.value, "locales": [locale, DEFAULT_LOCALE]},
        as_dicts=True,
    )
    by_locale = {row["locale"]: row for row in rows}
    for wanted in (locale, DEFAULT_LOCALE):
        if wanted in by_locale:
            row = by_locale[wanted]
            return TemplateText(
                row["subject"], row["body"], row["provider_template"], dict(row["provider_parameters"])
            )
    try:
        trigger = Trigger(key)
    except ValueError:
        raise UnknownTemplate(f"no template {key!r} for {channel.value}") from None
    return DEFAULTS.get((trigger, locale)) or DEFAULTS[(trigger, DEFAULT_LOCALE)]


def render_content(
    text: TemplateText, variables: Mapping[str, Any], *, channel: Channel, purpose: Purpose
) -> Content:
    """The message as its channel sends it. Marketing by SMS ends with the opt-out China requires (回T退订);
    marketing by e-mail carries its unsubscribe link."""
    body = render(text.body, variables)
    if purpose is Purpose.MARKETING and channel is Channel.SMS:
        body = sms.with_opt_out(body)
    if purpose is Purpose.MARKETING and channel is Channel.EMAIL and variables.get("unsubscribe_url"):
        body = f"{body}\n\n退订 / Unsubscribe: {variables['unsubscribe_url']}"
    parameters = {
        name: render(expression, variables) for name, expression in text.provider_parameters.items()
    }
    if variables.get("unsubscribe_url"):
        parameters.setdefault("unsubscribe_url", str(variables["unsubscribe_url"]))
    return Content(
        subject=render(text.subject, variables) if text.subject else None,
        body=body,
        provider_template=text.provider_template,
        parameters=parameters,
    )


def check_template(key: str, text: TemplateText) -> None:
    """Render a template with the variables its trigger offers; TemplateRenderError names what is wrong.
    A campaign's own template key is checked against the campaign's variables."""
    try:
        trigger = Trigger(key)
    except ValueError:
        trigger = Trigger.CAMPAIGN
    variables = SAMPLE_CONTEXT[trigger]
    render(text.body, variables)
    if text.subject:
        render(text.subject, variables)
    for name, expression in text.provider_parameters.items():
        try:
            render(expression, variables)
        except TemplateRenderError as error:
            raise TemplateRenderError(f"provider parameter {name}: {error}") from None
