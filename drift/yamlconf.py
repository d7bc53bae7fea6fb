"""YAML files validated by pydantic models, with errors that name the file, line and field."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)


class YamlError(ValueError):
    """One line per problem: ``FILE:LINE: field: message``."""


def line_of(root, loc) -> int | None:
    """1-based line of the YAML node at a pydantic error location, or of its nearest parent."""
    node, line = root, None
    for key in loc:
        if node is None:
            break
        line = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            node = next((v for k, v in node.value if k.value == key), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int):
            node = node.value[key] if key < len(node.value) else None
        else:
            node = None
    if node is not None:
        line = node.start_mark.line + 1
    return line


def parse(text: str, name: str, what: str = "a mapping of settings") -> tuple[Any, Any]:
    """(YAML node tree, data) of a document that must be a mapping."""
    try:
        root = yaml.compose(text)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{name}:{mark.line + 1}" if mark else name
        raise YamlError(f"{where}: not valid YAML: {getattr(exc, 'problem', exc)}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise YamlError(f"{name}:1: expected {what}")
    return root, data


def describe(
    exc: ValidationError, root, name: str, loc_filter: Callable[[tuple], tuple] = lambda loc: loc
) -> YamlError:
    lines = []
    for err in exc.errors():
        loc = loc_filter(tuple(err["loc"]))
        field = ".".join(str(p) for p in loc) or "(top level)"
        lines.append(f"{name}:{line_of(root, loc) or 1}: {field}: {err['msg']}")
    return YamlError("\n".join(lines))


def load(path: str | Path, model: type[M], **defaults: Any) -> M:
    """Read `path` into `model` (file values over `defaults`)."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise YamlError(f"{path}: {exc.strerror}") from None
    root, data = parse(text, str(path))
    try:
        return model.model_validate({**defaults, **data})
    except ValidationError as exc:
        raise describe(exc, root, str(path)) from None
