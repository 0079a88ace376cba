"""What each consumer reads of the events it subscribes to, derived from its handlers' code.

The consumers are the ones each installed service registers (`installed_consumers`: every service built from
its ServiceSpec, which connects to nothing). For each handler the analysis follows the event parameter through
the source: attribute chains (`event.slot.start` reads `slot.start`), loops and comprehensions over nested
lists (`line_items[*].name`), the tuples and lists the event travels in (a batch handler's
`[(envelope, event)]`), and every function or method it is handed to, found at run time through the handler's
closure, its module's globals and the objects those hold (`service.campaigns.save_segment_batch(…, event)`).
A field used as a whole (compared, stored, formatted, passed on) is read whole; so is a nested model handed
to code that cannot be read.

What it cannot follow fails (`UnfollowableRead`, naming the place) instead of being guessed: the whole event
handed to code without Python source or used as a value, a field that is no field of the event's model,
`ctx.envelope.data`. Handlers read the event through their parameter and pass it to plain functions.

    python -m pitlane_platform.testing.consumer_reads --write tests/contract/consumers.json   # make contracts
    python -m pitlane_platform.testing.consumer_reads --check tests/contract/consumers.json
"""

from __future__ import annotations

import argparse
import ast
import builtins
import collections.abc
import inspect
import json
import os
import sys
import textwrap
import types
import typing
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import import_module
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from pitlane_events import REGISTRY, DomainEvent, EventRegistry
from pitlane_platform.messaging.consumer import Consumer
from pitlane_platform.runtime import ServiceRuntime
from pitlane_platform.services import installed_services

# Building a service opens no connection; these only have to be well-formed.
_UNCONNECTED = {
    "DATABASE_URL": "postgresql+psycopg://unused@/unused?host=/nonexistent",
    "NATS_URL": "nats://unused.invalid:4222",
}
ELEMENT = "[*]"
# pydantic's own API on a model: each of these reads every field.
_WHOLE_MODEL_METHODS = frozenset({"model_dump", "model_dump_json", "model_copy", "model_fields_set"})
# What DomainEvent says about its class, not its payload.
_CLASS_LEVEL = frozenset({"event_type", "schema_version", "service", "name"})
# Builtins that take the event, or a batch of events, without reading a field of it (a field handed to them
# is still read: `len(event.customer_ids)` needs the list), and those that hand back what they iterate.
_NO_FIELD_OF_A_WHOLE = frozenset({len, isinstance, issubclass, type})
_PASS_THROUGH = frozenset({list, tuple, sorted, reversed, set, frozenset, iter})


class UnfollowableRead(Exception):
    """The analysis cannot tell what a handler reads at this place."""


@dataclass(frozen=True)
class ConsumerReads:
    consumer: str
    """`<service>.<purpose>`, the consumer's name."""
    event_type: str
    version: int
    """The newest version of the event: the model every handler receives, whatever was published."""
    fields: tuple[str, ...]
    """Paths of the fields the handler reads (`line_items[*].name`); a path read whole covers what is under it."""


def installed_consumers() -> list[Consumer]:
    """The consumers of every installed service, built as `pitlane up` builds the service (its ServiceSpec's
    app factory, settings from the environment) with database and NATS URLs that nothing connects to."""
    consumers: list[Consumer] = []
    for spec in installed_services():
        settings = {f"{spec.env_prefix}{name}": value for name, value in _UNCONNECTED.items()}
        with _environment(settings), _runtimes_built() as runtimes:
            module, _, factory = spec.asgi_factory.partition(":")
            getattr(import_module(module), factory)()
        consumers += [consumer for runtime in runtimes for consumer in runtime.consumers]
    return consumers


def consumer_reads(consumers: Sequence[Consumer], registry: EventRegistry = REGISTRY) -> list[ConsumerReads]:
    """What each consumer's handler of each event type reads of the newest version of that event."""
    return [
        ConsumerReads(
            consumer=consumer.name,
            event_type=event_type,
            version=registry.latest_version(event_type),
            fields=fields_read(handler, registry.latest(event_type)),
        )
        for consumer in sorted(consumers, key=lambda consumer: consumer.name)
        for event_type, handler in sorted(consumer.handlers.items())
    ]


def fields_read(handler: Callable[..., Any], model: type[DomainEvent]) -> tuple[str, ...]:
    """The field paths of `model` that `handler(ctx, event)` reads, sorted; none under a path read whole."""
    parameters = list(inspect.signature(inspect.unwrap(handler)).parameters)
    if len(parameters) < 2:
        raise UnfollowableRead(f"{_name(handler)}: a handler takes (ctx, event)")
    analysis = _Analysis(model)
    analysis.function(handler, {parameters[1]: _Read((), _Kind(models=(model,)))}, {})
    paths = sorted(analysis.reads)
    kept = [
        path for path in paths if not any(path[: len(other)] == other for other in paths if other != path)
    ]
    return tuple(_render(path) for path in kept)


def render(reads: Sequence[ConsumerReads]) -> str:
    """The committed form: per consumer, per event type, the version read and the fields."""
    document: dict[str, dict[str, Any]] = {}
    for read in reads:
        document.setdefault(read.consumer, {})[read.event_type] = {
            "version": read.version,
            "reads": list(read.fields),
        }
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


# --- the services, built ------------------------------------------------------------------------------------


@contextmanager
def _environment(values: Mapping[str, str]) -> Iterator[None]:
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextmanager
def _runtimes_built() -> Iterator[list[ServiceRuntime]]:
    """Every ServiceRuntime constructed meanwhile: a service's app factory returns only the app."""
    built: list[ServiceRuntime] = []
    original = ServiceRuntime.__init__

    def recording(self: ServiceRuntime, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        built.append(self)

    ServiceRuntime.__init__ = recording  # type: ignore[method-assign]
    try:
        yield built
    finally:
        ServiceRuntime.__init__ = original  # type: ignore[method-assign]


# --- what a value read from an event is -------------------------------------------------------------------


@dataclass(frozen=True)
class _Kind:
    """A model (or a union of models), a sequence of something, or else a leaf value."""

    models: tuple[type[BaseModel], ...] = ()
    item: _Kind | None = None


_LEAF = _Kind()
_SEQUENCES = (
    tuple,
    list,
    set,
    frozenset,
    collections.abc.Sequence,
    collections.abc.Set,
    collections.abc.Iterable,
)


def _kind_of(annotation: Any) -> _Kind:
    origin = typing.get_origin(annotation)
    arguments = [argument for argument in typing.get_args(annotation) if argument is not Ellipsis]
    if origin is typing.Annotated:
        return _kind_of(arguments[0])
    if origin in (typing.Union, types.UnionType):
        kinds = [_kind_of(argument) for argument in arguments if argument is not type(None)]
        if len(kinds) == 1:
            return kinds[0]
        if all(kind.models for kind in kinds):
            return _Kind(models=tuple(model for kind in kinds for model in kind.models))
        return _LEAF
    if origin in _SEQUENCES and len(arguments) == 1:
        return _Kind(item=_kind_of(arguments[0]))
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return _Kind(models=(annotation,))
    return _LEAF


def _field_kind(kind: _Kind, name: str) -> _Kind | None:
    for model in kind.models:
        info = model.model_fields.get(name)
        if info is not None:
            return _kind_of(info.annotation)
    return None


# --- values the analysis follows --------------------------------------------------------------------------


@dataclass(frozen=True)
class _Read:
    """A value read from the event: the field at `path` (the event itself at `()`)."""

    path: tuple[str, ...]
    kind: _Kind


@dataclass(frozen=True)
class _Tuple:
    """A tuple made in the code, position by position (`(envelope, event)`)."""

    items: tuple[_Value | None, ...]


@dataclass(frozen=True)
class _Many:
    """A list made in the code whose items are all `item` (`[(envelope, event)]`)."""

    item: _Value


_Value = _Read | _Tuple | _Many


class _Analysis:
    def __init__(self, model: type[DomainEvent]) -> None:
        self.model = model
        self.reads: set[tuple[str, ...]] = set()
        self._followed: set[Any] = set()

    def function(self, fn: Callable[..., Any], bindings: dict[str, _Value], objects: dict[str, Any]) -> None:
        """Follow `bindings` (parameter → value) through `fn`; `objects` are parameters bound to known objects."""
        fn = inspect.unwrap(fn)
        key = (
            getattr(fn, "__code__", fn),
            tuple(sorted(bindings.items(), key=lambda item: item[0])),
            tuple(sorted((name, id(value)) for name, value in objects.items())),
        )
        if key in self._followed:
            return
        self._followed.add(key)
        try:
            lines, first_line = inspect.getsourcelines(fn)
        except (OSError, TypeError):
            raise UnfollowableRead(f"{_name(fn)}: no source to follow the event into") from None
        tree = ast.parse(textwrap.dedent("".join(lines)))
        node = next(
            (
                node
                for node in ast.walk(tree)
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == fn.__name__
            ),
            None,
        )
        if node is None:
            raise UnfollowableRead(f"{_name(fn)}: no function definition in its source")
        _Walk(self, fn, objects, inspect.getsourcefile(fn) or "?", first_line - 1).function(node, bindings)


class _Walk:
    """One function's source, walked with what each local name holds of the event."""

    def __init__(
        self,
        analysis: _Analysis,
        fn: Callable[..., Any],
        objects: dict[str, Any],
        file: str,
        line_offset: int,
    ) -> None:
        self.analysis = analysis
        self.fn = fn
        self.objects = objects
        self.file = file
        self.line_offset = line_offset
        self.local_functions: dict[str, ast.FunctionDef | ast.AsyncFunctionDef] = {}
        self.local_names: set[str] = set()

    # -- places and failures

    def refuse(self, node: ast.AST, why: str) -> UnfollowableRead:
        line = self.line_offset + getattr(node, "lineno", 1)
        return UnfollowableRead(f"{self.file}:{line} ({_name(self.fn)}): {why}")

    # -- reads

    def use(self, value: _Value | None, node: ast.AST) -> None:
        """`value` is used whole: every field under it is read."""
        if isinstance(value, _Read):
            if not value.path:
                raise self.refuse(
                    node,
                    "the whole event is used here (handed to code without source, stored or compared): "
                    "read its fields, or pass it to a plain function",
                )
            self.analysis.reads.add(value.path)
        elif isinstance(value, _Tuple):
            for item in value.items:
                self.use(item, node)
        elif isinstance(value, _Many):
            self.use(value.item, node)

    def read_all(self, value: _Read) -> None:
        if value.path:
            self.analysis.reads.add(value.path)
            return
        self.analysis.reads.update((name,) for name in self.analysis.model.model_fields)

    # -- functions and statements

    def function(
        self, node: ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda, bindings: dict[str, _Value]
    ) -> None:
        self.local_names |= _parameters(node.args) | {
            target.id
            for target in ast.walk(node)
            if isinstance(target, ast.Name) and isinstance(target.ctx, ast.Store)
        }
        env = dict(bindings)
        if isinstance(node, ast.Lambda):
            self.use(self.eval(node.body, env), node)
        else:
            self.block(node.body, env)

    def block(self, statements: Sequence[ast.stmt], env: dict[str, _Value]) -> None:
        for statement in statements:
            self.statement(statement, env)

    def statement(self, node: ast.stmt, env: dict[str, _Value]) -> None:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            # A function defined here may close over the event; it is walked again if called with it.
            self.local_functions[node.name] = node
            self.function(node, _without(env, _parameters(node.args)))
        elif isinstance(node, ast.Assign):
            value = self.eval(node.value, env)
            for target in node.targets:
                self.bind(target, value, env)
        elif isinstance(node, ast.AnnAssign):
            if node.value is not None:
                self.bind(node.target, self.eval(node.value, env), env)
        elif isinstance(node, ast.AugAssign):
            self.use(self.eval(node.value, env), node)
            self.use(self.eval(node.target, env), node)
        elif isinstance(node, ast.For | ast.AsyncFor):
            self.bind(node.target, self.item_of(self.eval(node.iter, env), node), env)
            self.block(node.body, env)
            self.block(node.orelse, env)
        elif isinstance(node, ast.With | ast.AsyncWith):
            for item in node.items:
                self.use(self.eval(item.context_expr, env), node)
                if item.optional_vars is not None:
                    self.bind(item.optional_vars, None, env)
            self.block(node.body, env)
        else:
            for child in ast.iter_child_nodes(node):
                if isinstance(child, ast.stmt):
                    self.statement(child, env)
                elif isinstance(child, ast.expr):
                    self.use(self.eval(child, env), child)
                elif isinstance(child, ast.excepthandler | ast.match_case):
                    for grandchild in ast.iter_child_nodes(child):
                        if isinstance(grandchild, ast.stmt):
                            self.statement(grandchild, env)
                        elif isinstance(grandchild, ast.expr):
                            self.use(self.eval(grandchild, env), grandchild)

    def bind(self, target: ast.expr, value: _Value | None, env: dict[str, _Value]) -> None:
        if isinstance(target, ast.Name):
            if value is None:
                env.pop(target.id, None)
            else:
                env[target.id] = value
        elif isinstance(target, ast.Tuple | ast.List):
            if isinstance(value, _Tuple) and len(value.items) == len(target.elts):
                for element, item in zip(target.elts, value.items, strict=True):
                    self.bind(element, item, env)
                return
            self.use(value, target)
            for element in target.elts:
                self.bind(element, None, env)
        else:  # an attribute, a subscript or a starred target: the value is stored away whole
            self.use(value, target)
            for child in ast.iter_child_nodes(target):
                if isinstance(child, ast.expr):
                    self.use(self.eval(child, env), child)

    def item_of(self, value: _Value | None, node: ast.AST) -> _Value | None:
        """What iterating over `value` yields."""
        if isinstance(value, _Many):
            return value.item
        if isinstance(value, _Read) and value.kind.item is not None:
            return _Read((*value.path, ELEMENT), value.kind.item)
        self.use(value, node)
        return None

    # -- expressions

    def eval(self, node: ast.expr, env: dict[str, _Value]) -> _Value | None:
        """What of the event `node` evaluates to, recording what it reads on the way."""
        if isinstance(node, ast.Name):
            return env.get(node.id)
        if isinstance(node, ast.Attribute):
            return self.attribute(node, env)
        if isinstance(node, ast.Subscript):
            return self.subscript(node, env)
        if isinstance(node, ast.Call):
            return self.call(node, env)
        if isinstance(node, ast.Tuple):
            items = tuple(self.eval(element, env) for element in node.elts)
            if any(isinstance(element, ast.Starred) for element in node.elts):
                for item in items:
                    self.use(item, node)
                return None
            return _Tuple(items) if any(item is not None for item in items) else None
        if isinstance(node, ast.List | ast.Set):
            return self.collection([self.eval(element, env) for element in node.elts], node)
        if isinstance(node, ast.ListComp | ast.SetComp | ast.GeneratorExp):
            inner = self.generators(node.generators, env)
            return self.collection([self.eval(node.elt, inner)], node)
        if isinstance(node, ast.DictComp):
            inner = self.generators(node.generators, env)
            self.use(self.eval(node.key, inner), node)
            self.use(self.eval(node.value, inner), node)
            return None
        if isinstance(node, ast.NamedExpr):
            value = self.eval(node.value, env)
            self.bind(node.target, value, env)
            return value
        if isinstance(node, ast.Lambda):
            self.function(node, _without(env, _parameters(node.args)))
            return None
        if isinstance(node, ast.Compare):
            self.compare(node, env)
            return None
        if isinstance(node, ast.Starred):
            return self.eval(node.value, env)
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.expr):
                self.use(self.eval(child, env), child)
            elif isinstance(child, ast.keyword):
                self.use(self.eval(child.value, env), child)
        return None

    def collection(self, items: list[_Value | None], node: ast.AST) -> _Value | None:
        found = [item for item in items if item is not None]
        if not found:
            return None
        if all(item == found[0] for item in found):
            return _Many(found[0])
        for item in found:
            self.use(item, node)
        return None

    def generators(self, generators: list[ast.comprehension], env: dict[str, _Value]) -> dict[str, _Value]:
        inner = dict(env)
        for generator in generators:
            self.bind(generator.target, self.item_of(self.eval(generator.iter, inner), generator), inner)
            for condition in generator.ifs:
                self.use(self.eval(condition, inner), condition)
        return inner

    def compare(self, node: ast.Compare, env: dict[str, _Value]) -> None:
        identity_only = all(isinstance(op, ast.Is | ast.IsNot) for op in node.ops)
        for operand in [node.left, *node.comparators]:
            value = self.eval(operand, env)
            if identity_only and isinstance(value, _Read) and not value.path:
                continue  # `event is None` reads no field
            self.use(value, operand)

    def attribute(self, node: ast.Attribute, env: dict[str, _Value]) -> _Value | None:
        base = self.eval(node.value, env)
        if base is None:
            if node.attr == "data" and _names_an_envelope(node.value):
                raise self.refuse(
                    node, "reads the event through the envelope: read it through the handler's parameter"
                )
            return None
        if not isinstance(base, _Read):
            self.use(base, node)
            return None
        if not base.kind.models:  # a leaf's own attribute or method: `.value`, `.isoformat()`
            self.use(base, node)
            return None
        child = _field_kind(base.kind, node.attr)
        if child is not None:
            return _Read((*base.path, node.attr), child)
        if node.attr in _WHOLE_MODEL_METHODS:
            self.read_all(base)
            return None
        if node.attr in _CLASS_LEVEL and all(issubclass(model, DomainEvent) for model in base.kind.models):
            return None
        for model in base.kind.models:
            member = inspect.getattr_static(model, node.attr, None)
            code = member.fget if isinstance(member, property) else member
            if inspect.isfunction(code):
                self_name = next(iter(inspect.signature(code).parameters))
                self.analysis.function(code, {self_name: base}, {})
                return None
        models = " | ".join(model.__name__ for model in base.kind.models)
        raise self.refuse(node, f"reads `{node.attr}`, which is no field of {models}")

    def subscript(self, node: ast.Subscript, env: dict[str, _Value]) -> _Value | None:
        base = self.eval(node.value, env)
        self.use(self.eval(node.slice, env), node.slice)
        if isinstance(base, _Many):
            return base.item
        if isinstance(base, _Tuple):
            index = node.slice
            if (
                isinstance(index, ast.Constant)
                and isinstance(index.value, int)
                and -len(base.items) <= index.value < len(base.items)
            ):
                return base.items[index.value]
            self.use(base, node)
            return None
        if isinstance(base, _Read) and base.kind.item is not None and not isinstance(node.slice, ast.Slice):
            return _Read((*base.path, ELEMENT), base.kind.item)
        self.use(base, node)
        return None

    def call(self, node: ast.Call, env: dict[str, _Value]) -> _Value | None:
        callee_value = self.eval(node.func, env)
        self.use(callee_value, node.func)
        arguments = [(argument, self.eval(argument, env)) for argument in node.args]
        keywords = [(keyword, self.eval(keyword.value, env)) for keyword in node.keywords]
        found, callee = self.runtime_value(node.func)
        if found and callee is None:
            return None  # a call behind `if follower is not None`, never made
        if found and callee in _NO_FIELD_OF_A_WHOLE:
            for argument, value in [*arguments, *keywords]:
                if isinstance(value, _Read) and value.path:
                    self.use(value, argument)
            return None
        if found and callee in _PASS_THROUGH and len(arguments) == 1 and not keywords:
            return arguments[0][1]
        if found and callee is enumerate and arguments:
            item = self.item_of(arguments[0][1], node)
            return _Many(_Tuple((None, item))) if item is not None else None
        if any(_holds_a_model(value) for _, value in [*arguments, *keywords]):
            # Only a model is worth following into the callee; a field's value handed on is read whole.
            local = node.func.id if isinstance(node.func, ast.Name) else None
            if local in self.local_functions and local not in env:
                self.follow_local(self.local_functions[local], arguments, keywords, env)
                return None
            if found and self.follow(callee, node, arguments, keywords):
                return None
        for argument, value in [*arguments, *keywords]:
            self.use(value, argument)
        return None

    def follow(
        self,
        callee: Any,
        node: ast.Call,
        arguments: list[tuple[ast.expr, _Value | None]],
        keywords: list[tuple[ast.keyword, _Value | None]],
    ) -> bool:
        """Follow the values into a Python function or method; False when it cannot be read."""
        objects: dict[str, Any] = {}
        function = callee
        if inspect.ismethod(callee):
            function = callee.__func__
            objects[next(iter(inspect.signature(function).parameters))] = callee.__self__
        function = inspect.unwrap(function)
        if not inspect.isfunction(function):
            return False
        bindings = self.bind_arguments(inspect.signature(callee), node, arguments, keywords)
        if bindings is None:
            return False
        self.analysis.function(function, bindings, objects)
        return True

    def follow_local(
        self,
        definition: ast.FunctionDef | ast.AsyncFunctionDef,
        arguments: list[tuple[ast.expr, _Value | None]],
        keywords: list[tuple[ast.keyword, _Value | None]],
        env: dict[str, _Value],
    ) -> None:
        """A function defined in the one being walked: walked again with the values as its parameters."""
        parameters = [parameter.arg for parameter in [*definition.args.posonlyargs, *definition.args.args]]
        bindings = _without(env, _parameters(definition.args))
        for index, (argument, value) in enumerate(arguments):
            if value is None:
                continue
            if isinstance(argument, ast.Starred) or index >= len(parameters):
                self.use(value, argument)
            else:
                bindings[parameters[index]] = value
        for keyword, value in keywords:
            if value is None:
                continue
            if keyword.arg is None or keyword.arg not in _parameters(definition.args):
                self.use(value, keyword)
            else:
                bindings[keyword.arg] = value
        self.function(definition, bindings)

    def bind_arguments(
        self,
        signature: inspect.Signature,
        node: ast.Call,
        arguments: list[tuple[ast.expr, _Value | None]],
        keywords: list[tuple[ast.keyword, _Value | None]],
    ) -> dict[str, _Value] | None:
        if any(isinstance(argument, ast.Starred) for argument, _ in arguments) or any(
            keyword.arg is None for keyword, _ in keywords
        ):
            return None
        markers = [object() for _ in arguments]
        keyword_markers = {keyword.arg: object() for keyword, _ in keywords if keyword.arg is not None}
        try:
            bound = signature.bind(*markers, **keyword_markers)
        except TypeError:
            return None
        parameter_of: dict[int, str] = {}
        for name, marker in bound.arguments.items():
            kind = signature.parameters[name].kind
            if kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
                parameter_of[id(marker)] = name
        bindings: dict[str, _Value] = {}
        supplied = list(zip(markers, arguments, strict=True)) + [
            (keyword_markers[keyword.arg], (keyword, value))
            for keyword, value in keywords
            if keyword.arg is not None
        ]
        for marker, (argument, value) in supplied:
            if value is None:
                continue
            parameter = parameter_of.get(id(marker))
            if parameter is None:  # gathered into *args or **kwargs: used whole
                self.use(value, argument)
            else:
                bindings[parameter] = value
        return bindings

    def runtime_value(self, node: ast.expr) -> tuple[bool, Any]:
        """The object an expression names when the code runs, if the analysis can know it."""
        if isinstance(node, ast.Name):
            if node.id in self.objects:
                return True, self.objects[node.id]
            if node.id in self.local_names:
                return False, None
            code = getattr(self.fn, "__code__", None)
            if code is not None and node.id in code.co_freevars and self.fn.__closure__ is not None:
                try:
                    return True, self.fn.__closure__[code.co_freevars.index(node.id)].cell_contents
                except ValueError:  # a cell not filled yet
                    return False, None
            module_globals = getattr(self.fn, "__globals__", {})
            if node.id in module_globals:
                return True, module_globals[node.id]
            if hasattr(builtins, node.id):
                return True, getattr(builtins, node.id)
            return False, None
        if isinstance(node, ast.Attribute):
            found, base = self.runtime_value(node.value)
            if found:
                try:
                    return True, getattr(base, node.attr)
                except Exception:
                    return False, None
        return False, None


def _holds_a_model(value: _Value | None) -> bool:
    if isinstance(value, _Read):
        kind: _Kind | None = value.kind
        while kind is not None and not kind.models:
            kind = kind.item
        return kind is not None
    if isinstance(value, _Tuple):
        return any(_holds_a_model(item) for item in value.items)
    if isinstance(value, _Many):
        return _holds_a_model(value.item)
    return False


def _parameters(arguments: ast.arguments) -> set[str]:
    names = [*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs]
    names += [argument for argument in (arguments.vararg, arguments.kwarg) if argument is not None]
    return {argument.arg for argument in names}


def _without(env: dict[str, _Value], names: set[str]) -> dict[str, _Value]:
    return {name: value for name, value in env.items() if name not in names}


def _names_an_envelope(node: ast.expr) -> bool:
    name = node.attr if isinstance(node, ast.Attribute) else node.id if isinstance(node, ast.Name) else ""
    return "envelope" in name


def _render(path: tuple[str, ...]) -> str:
    text = ""
    for part in path:
        text += part if part == ELEMENT or not text else f".{part}"
    return text


def _name(fn: Any) -> str:
    return f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', repr(fn))}"


# --- the committed file -------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="What each consumer reads of the events it subscribes to.")
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--write", type=Path, metavar="FILE", help="write the consumers' reads to FILE")
    mode.add_argument("--check", type=Path, metavar="FILE", help="exit 1 if FILE differs from the code")
    args = parser.parse_args(argv)
    text = render(consumer_reads(installed_consumers()))
    if args.write is not None:
        args.write.write_text(text, encoding="utf-8")
        print(f"wrote {args.write}")
        return 0
    if not args.check.exists() or args.check.read_text(encoding="utf-8") != text:
        print(f"{args.check} differs from what the consumers read (run `make contracts`)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
