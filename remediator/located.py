"""Errors located in YAML: where every value and key stands (file and line), and
pydantic's validation errors phrased for humans (``unknown field (did you mean
'retries'?); allowed here: …``). Used by the playbook loader and the settings.
"""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Iterator
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from remediator.errors import ConfigError, Problem

Loc = tuple[str | int, ...]


# --- YAML with positions ---------------------------------------------------------

def line_map(node: yaml.Node, path: Loc, out: dict[Loc, int]) -> None:
    """Record the 1-based line of every value (and every mapping key) under ``node``."""
    out.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode):
                child = (*path, str(key.value))
                out[child] = key.start_mark.line + 1
                line_map(value, child, out)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            line_map(item, (*path, i), out)


def documents(text: str, source: str) -> Iterator[tuple[Any, dict[Loc, int], int]]:
    """Yield (data, line map, first line) for each YAML document; YAML errors → ConfigError."""
    loader = yaml.SafeLoader(text)
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                continue
            lines: dict[Loc, int] = {}
            line_map(node, (), lines)
            data = loader.construct_document(node)
            yield data, lines, node.start_mark.line + 1
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        reason = exc.problem or exc.context or "invalid YAML"
        raise ConfigError([Problem(source, line, f"invalid YAML: {reason}")]) from exc
    except yaml.YAMLError as exc:
        raise ConfigError([Problem(source, None, f"invalid YAML: {exc}")]) from exc
    finally:
        loader.dispose()


def line_for(lines: dict[Loc, int], loc: Loc, default: int) -> int:
    for cut in range(len(loc), -1, -1):
        line = lines.get(loc[:cut])
        if line is not None:
            return line
    return default


def format_loc(loc: Loc) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out.removeprefix("spec.")


# --- pydantic errors, phrased for humans ------------------------------------------

def model_at(model: type[BaseModel], loc: Loc) -> type[BaseModel] | None:
    """The pydantic model class that owns the last element of ``loc``."""
    current: Any = model
    for part in loc:
        if isinstance(part, int):
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return None
        field = next((f for n, f in current.model_fields.items()
                      if part in (n, f.alias)), None)
        if field is None:
            return current
        current = _unwrap(field.annotation)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _unwrap(annotation: Any) -> Any:
    while True:
        origin = typing.get_origin(annotation)
        if origin in (list, tuple, set, frozenset):
            annotation = typing.get_args(annotation)[0]
        elif origin in (typing.Union, types.UnionType):
            models = [a for a in typing.get_args(annotation)
                      if isinstance(a, type) and issubclass(a, BaseModel)]
            return models[0] if models else annotation
        elif origin is typing.Annotated:
            annotation = typing.get_args(annotation)[0]
        else:
            return annotation


def _field_names(model: type[BaseModel]) -> list[str]:
    return [f.alias or n for n, f in model.model_fields.items()]


def phrase(err: ErrorDetails, root: type[BaseModel]) -> str:
    kind = err["type"]
    loc = tuple(err["loc"])
    if kind == "extra_forbidden":
        owner = model_at(root, loc[:-1]) if loc else None
        name = str(loc[-1]) if loc else "?"
        if owner is not None:
            allowed = _field_names(owner)
            close = difflib.get_close_matches(name, allowed, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            return f"unknown field{hint}; allowed here: {', '.join(allowed)}"
        return "unknown field"
    if kind == "missing":
        return "required field is missing"
    if kind == "literal_error":
        expected = err.get("ctx", {}).get("expected", "")
        return f"must be {expected}, got {err.get('input')!r}"
    msg = err["msg"]
    for prefix in ("Value error, ", "Assertion failed, "):
        msg = msg.removeprefix(prefix)
    return msg


def validation_problems(exc: ValidationError, root: type[BaseModel], source: str,
                         lines: dict[Loc, int], base: Loc, first_line: int) -> list[Problem]:
    problems = []
    for err in exc.errors():
        loc = (*base, *err["loc"])
        where = format_loc(loc)
        text = phrase(err, root)
        problems.append(Problem(source, line_for(lines, loc, first_line),
                                f"{where}: {text}" if where else text))
    return problems
