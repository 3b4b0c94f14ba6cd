"""Generate docs/configuration.md from the Settings model (the model is the single source).

    .venv/bin/python -m config.reference > docs/configuration.md

tests/unit/test_docs.py fails when the committed file differs from what this prints.
"""

from __future__ import annotations

import json
import sys
from types import UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from config.settings import Settings

HEADER = """# Configuration reference

Generated from `config/settings.py` by `python -m config.reference`; do not edit by hand.

Pass one YAML file with `cdk synth -c config=PATH` (or `make synth CONFIG=PATH`). Every key is
optional: without a file the defaults below make a complete new deployment. Unknown keys and
invalid values stop the synth with the key's path and the reason. Examples:
`config/examples/`.

| key | type | default | description |
|---|---|---|---|
"""


def rows(model: type[BaseModel], prefix: str = "") -> list[str]:
    lines: list[str] = []
    for name, field in model.model_fields.items():
        path = f"{prefix}{name}"
        nested = _nested_model(field)
        if nested is not None:
            lines += rows(nested, f"{path}.")
            continue
        lines.append(
            f"| `{path}` | {_type(field)} | {_default(field)} | {field.description or ''} |"
        )
    return lines


def _nested_model(field: FieldInfo) -> type[BaseModel] | None:
    annotation = field.annotation
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None


def _type(field: FieldInfo) -> str:
    return _describe_type(field.annotation)


def _describe_type(annotation: Any) -> str:
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Annotated:
        return _describe_type(args[0])
    if origin is Literal:
        return " or ".join(f"`{a}`" for a in args)
    if origin in (Union, UnionType):
        return " or ".join("null" if a is type(None) else _describe_type(a) for a in args)
    if origin is list:
        return f"list of {_describe_type(args[0])}"
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        # A library model stores a YAML list as a tuple (frozen); the file still gives a list.
        return f"list of {_describe_type(args[0])}"
    if origin is dict:
        return f"map of {_describe_type(args[0])} to {_describe_type(args[1])}"
    return getattr(annotation, "__name__", str(annotation))


def _default(field: FieldInfo) -> str:
    value: Any = field.get_default(call_default_factory=True)
    return f"`{json.dumps(value)}`"


def render() -> str:
    return HEADER + "\n".join(rows(Settings)) + "\n"


if __name__ == "__main__":
    sys.stdout.write(render())
