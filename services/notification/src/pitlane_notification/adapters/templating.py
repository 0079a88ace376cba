"""Templates are written by chain staff, not by us: they are rendered in Jinja2's immutable sandbox (no
attribute access to internals, no mutation of what they are given), with every variable required, so a
misspelt one fails when the template is saved rather than in a customer's message."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from jinja2 import StrictUndefined, TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment

_ENVIRONMENT = ImmutableSandboxedEnvironment(
    undefined=StrictUndefined, autoescape=False, keep_trailing_newline=False
)
# Bounds what one render can produce: a template looping over a huge range would otherwise be a
# denial of service from a staff account.
MAX_RENDERED_CHARS = 20_000


class TemplateRenderError(ValueError):
    """The template does not compile or render with the variables its trigger offers."""


def render(source: str, variables: Mapping[str, Any]) -> str:
    try:
        rendered = _ENVIRONMENT.from_string(source).render(**variables)
    except TemplateError as error:
        raise TemplateRenderError(f"{type(error).__name__}: {error.message or error}") from None
    except (ArithmeticError, TypeError, ValueError, OverflowError) as error:
        raise TemplateRenderError(f"{type(error).__name__} while rendering") from None
    if len(rendered) > MAX_RENDERED_CHARS:
        raise TemplateRenderError(f"renders to more than {MAX_RENDERED_CHARS} characters")
    return rendered.strip()
