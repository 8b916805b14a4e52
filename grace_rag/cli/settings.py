"""Typer options generated from config dataclasses: one option per field, named, typed and described by the field.

``--max-rationale-tokens`` is ``EncoderConfig.max_rationale_tokens`` on every command that takes
encoder settings, with the field's own help; a field added to ``EncoderConfig`` (or ``TrainConfig``)
becomes an option of every such command without another edit. A field's metadata may carry
``flag`` (the option's name when ``--field-name`` collides), ``aliases`` (short or legacy
spellings), ``off`` (the "off" name of a boolean flag), ``metavar``, ``parse`` (a function
turning the option's text, or each item's for a list, into the field's value), ``extend``
(a list option adds to the config file's list); ``runtime=True`` or ``cli=False`` make no option
(a Python-only knob, or a setting only a config file can hold). Options not given stay out of the config, so a config's ``explicit`` set is exactly
what the user typed.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

import typer

from grace_rag.errors import GraceError

#: old option spellings still accepted for one release: old flag -> (field, config class name)
DEPRECATED_FLAGS: dict[str, tuple[str, str]] = {
    "--rationale-tokens": ("max_rationale_tokens", "EncoderConfig"),
}


def _optional(kind: Any) -> Any:
    """``kind`` made optional (``None``: option not given); ``X | None`` stays as it is."""
    args = typing.get_args(kind)
    if type(None) in args:
        return kind
    return kind | None


def _is_dataclass_type(kind: Any) -> bool:
    return isinstance(kind, type) and dataclasses.is_dataclass(kind)


def _cli_type(kind: Any) -> Any:
    """The type typer parses: the field's own, with lists of X as repeatable options."""
    members = [m for m in typing.get_args(kind) if m is not type(None)] if _is_union(kind) else [kind]
    if len(members) == 1 and typing.get_origin(members[0]) in (list, tuple):
        return list[typing.get_args(members[0])[0]] | None
    return _optional(kind)


def _is_list(kind: Any) -> bool:
    members = [m for m in typing.get_args(kind) if m is not type(None)] if _is_union(kind) else [kind]
    return len(members) == 1 and typing.get_origin(members[0]) in (list, tuple)


def _is_union(kind: Any) -> bool:
    return typing.get_origin(kind) is typing.Union or isinstance(kind, types.UnionType)


def flag_of(f: dataclasses.Field) -> str:
    """The CLI name of field ``f``: its ``flag`` metadata, else ``--field-name``."""
    return f.metadata.get("flag") or "--" + f.name.replace("_", "-")


@dataclass(frozen=True)
class FieldOption:
    """One generated option: the parameter typer sees and the config field it fills."""

    param: inspect.Parameter
    field: str
    parse: Callable[[Any], Any] | None = None
    deprecated: str | None = None  # the old flag this hidden option stands for
    extend: bool = False  # a list option adds to the base config's list instead of replacing it


def field_options(cls: type, prefix: str = "") -> list[FieldOption]:
    """One option per field of dataclass ``cls`` (nested dataclass fields expand into theirs, prefixed ``name.``)."""
    hints = typing.get_type_hints(cls)
    out: list[FieldOption] = []
    for f in dataclasses.fields(cls):
        kind = hints[f.name]
        if _is_dataclass_type(kind):
            out += field_options(kind, prefix=f"{prefix}{f.name}.")
            continue
        if f.metadata.get("runtime") or f.metadata.get("cli") is False:
            continue
        out.append(_option(f, kind, prefix))
        out += [_deprecated(f, kind, prefix, old) for old, (name, owner) in DEPRECATED_FLAGS.items()
                if name == f.name and owner == cls.__name__]
    return out


def _param_name(prefix: str, name: str) -> str:
    return "cfg__" + (prefix + name).replace(".", "__")


def _option(f: dataclasses.Field, kind: Any, prefix: str) -> FieldOption:
    flag = flag_of(f)
    parse = f.metadata.get("parse")
    if kind is bool or kind == bool | None:
        decls = [f"{flag}/{f.metadata.get('off') or '--no-' + flag[2:]}"]
    else:
        decls = [flag]
    decls += list(f.metadata.get("aliases", ()))
    info = typer.Option(*decls, help=f.metadata.get("help", ""), metavar=f.metadata.get("metavar"),
                        show_default=False)
    cli_type = _cli_type(kind)
    if parse is not None:  # the option's text (each item's, for a list) is parsed by the field's own function
        cli_type = list[str] | None if _is_list(cli_type) else str | None
    param = inspect.Parameter(_param_name(prefix, f.name), inspect.Parameter.KEYWORD_ONLY, default=None,
                              annotation=Annotated[cli_type, info])
    return FieldOption(param, prefix + f.name, parse, extend=bool(f.metadata.get("extend")))


def _deprecated(f: dataclasses.Field, kind: Any, prefix: str, old: str) -> FieldOption:
    info = typer.Option(old, hidden=True, help=f"Deprecated spelling of {flag_of(f)}.")
    name = _param_name(prefix, f.name) + "__" + old.strip("-").replace("-", "_")
    param = inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None,
                              annotation=Annotated[_cli_type(kind), info])
    return FieldOption(param, prefix + f.name, deprecated=old)


@dataclass
class Given:
    """The fields of a config class given on the command line, typed; nested configs under ``name.``."""

    cls: type
    values: dict[str, Any]
    extend: frozenset[str] = frozenset()  # list fields whose given items are added to the base's

    def build(self) -> Any:
        """A config of the given values only (so its ``explicit`` set is what was typed)."""
        return self.onto(None)

    def onto(self, base: Any) -> Any:
        """``base`` (None: the class's defaults) with the given values; a nested config keeps its own explicit set."""
        flat = {k: v for k, v in self.values.items() if "." not in k}
        nested: dict[str, dict[str, Any]] = {}
        for key, value in self.values.items():
            if "." in key:
                head, _, rest = key.partition(".")
                nested.setdefault(head, {})[rest] = value
        if base is None:
            base = self.cls(**flat)
            flat = {}
        changes = {k: [*getattr(base, k), *v] if k in self.extend else v for k, v in flat.items()}
        for head, values in nested.items():
            changes[head] = getattr(base, head).with_changes(**values)
        if not changes:
            return base
        # an EncoderConfig records what was given explicitly; replace() would mark every field
        return base.with_changes(**changes) if hasattr(base, "with_changes") else dataclasses.replace(base, **changes)


def config_options(**groups: type) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Replace each parameter named in ``groups`` (``settings=EncoderConfig``) by one option per field.

    The command then receives a :class:`Given` for that parameter. Old spellings print one
    deprecation line and still work; a field given under two spellings with two values is refused.
    """

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        signature = inspect.signature(func, eval_str=True)
        options = {group: field_options(cls) for group, cls in groups.items()}
        params = [p for p in signature.parameters.values() if p.name not in groups]
        generated = [o.param for opts in options.values() for o in opts]
        _check_unique(params, generated, func.__name__)

        @functools.wraps(func)
        def wrapper(**kwargs: Any) -> Any:
            for group, opts in options.items():
                kwargs[group] = Given(groups[group], _collect(opts, kwargs),
                                      frozenset(o.field for o in opts if o.extend))
            return func(**kwargs)

        wrapper.__signature__ = signature.replace(parameters=params + generated)  # type: ignore[attr-defined]
        wrapper.__annotations__ = {p.name: p.annotation for p in params + generated}
        return wrapper

    return decorate


def _collect(opts: list[FieldOption], kwargs: dict[str, Any]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for option in opts:
        value = kwargs.pop(option.param.name)
        if value is None:
            continue
        if option.deprecated:
            typer.secho(f"warning: {option.deprecated} is deprecated and goes in the next release; "
                        f"use {_flag_for(opts, option.field)}", fg=typer.colors.YELLOW, err=True)
        if option.parse is not None:
            try:
                value = [option.parse(v) for v in value] if isinstance(value, list) else option.parse(value)
            except GraceError as exc:
                raise typer.BadParameter(str(exc), param_hint=_flag_for(opts, option.field)) from None
        if option.field in values and values[option.field] != value:
            raise typer.BadParameter(f"given twice with different values ({values[option.field]!r} and {value!r})",
                                     param_hint=_flag_for(opts, option.field))
        values[option.field] = value
    return values


def _flag_for(opts: list[FieldOption], name: str) -> str:
    option = next(o for o in opts if o.field == name and not o.deprecated)
    return _spellings(option.param)[0]


def _spellings(param: inspect.Parameter) -> list[str]:
    """Every spelling of an option parameter (``--lora/--full`` gives both); [] for an argument."""
    info = next((a for a in typing.get_args(param.annotation)[1:] if isinstance(a, typer.models.OptionInfo)), None)
    if info is None:
        return []
    # inside Annotated, typer.Option's first positional (its "default") is the first declaration
    decls = [info.default] if isinstance(info.default, str) else []
    decls += list(info.param_decls or ())
    decls = decls or ["--" + param.name.replace("_", "-")]
    return [spelling for decl in decls for spelling in decl.split("/") if spelling]


def _check_unique(params: list[inspect.Parameter], generated: list[inspect.Parameter], command: str) -> None:
    """Two options with one spelling would shadow each other silently: refuse at import time."""
    seen: dict[str, str] = {}
    for param in params + generated:
        for spelling in _spellings(param):
            if spelling in seen:
                raise TypeError(f"{command}: option {spelling} is declared by both {seen[spelling]} and {param.name}")
            seen[spelling] = param.name
