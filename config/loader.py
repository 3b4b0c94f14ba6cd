"""Read a config file into Settings, turning every failure into one readable ConfigError.

The message names the file and each offending key path (`exposure.external.allowed_cidrs`),
so `cdk synth` tells the user what to fix instead of printing a traceback.
"""

from __future__ import annotations

import difflib
from collections.abc import Hashable, Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from config.settings import Settings
from mlflow_on_eks.k8s_charts.model import KEY_MARK


class ConfigError(Exception):
    """The configuration cannot be used; str() is the message to show the user."""


APP_CONTEXT_KEYS = ("config", "allow_data_destroy")
"""The context keys this app reads (`-c key=value`). CDK's own keys all contain a colon
(`@aws-cdk/core:...`, `aws:cdk:...`, cached lookups such as `availability-zones:account=...`)."""


def check_context(context: dict[str, Any]) -> None:
    """Refuse a mistyped or empty context key: it would silently deploy the defaults (a new VPC
    and cluster) where the user meant their own file."""
    problems = []
    for key in sorted(context):
        if ":" in key or key in APP_CONTEXT_KEYS:
            continue
        close = difflib.get_close_matches(key, APP_CONTEXT_KEYS, n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        problems.append(
            f"  -c {key}: unknown context key{hint} (this app reads: {', '.join(APP_CONTEXT_KEYS)})"
        )
    if "config" in context and not str(context["config"] or "").strip():
        problems.append(
            "  -c config: is empty; name a YAML file, or leave -c config out for the defaults"
        )
    if problems:
        raise ConfigError("invalid context\n" + "\n".join(problems))


def load_settings(path: str | Path | None) -> Settings:
    """Settings from a YAML file; None gives the defaults (a complete new deployment)."""
    if path is None:
        return Settings()
    raw, duplicates = _read_yaml(Path(path))
    return parse_settings(raw, source=str(path), problems=duplicates)


def parse_settings(raw: Any, *, source: str = "config", problems: Sequence[str] = ()) -> Settings:
    """Validate already-parsed data (a mapping) into Settings; `problems` found while reading
    the file are reported with the model's, in one message."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(
            f"{source}: the top level must be a mapping of keys, got {type(raw).__name__}"
        )
    lines = list(problems)
    try:
        settings = Settings.model_validate(raw)
    except ValidationError as error:
        lines += [_describe(e) for e in error.errors(include_url=False)]
    if lines:
        raise ConfigError(f"{source}: invalid configuration\n" + "\n".join(lines))
    return settings


class _KeyCheckingLoader(yaml.SafeLoader):
    """PyYAML keeps the last of two equal keys in a mapping and drops the first silently:
    a second `server:` block would discard the first. This loader records each repeat."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.duplicates: list[str] = []

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)  # type: ignore[no-untyped-call]
            line = key_node.start_mark.line + 1
            if not isinstance(key, Hashable):
                continue  # PyYAML's own construct_mapping below refuses it, with its line
            if key in seen:
                self.duplicates.append(
                    f"  line {line}: {key!r} appears again (first at line {seen[key]}); YAML "
                    "would keep only this one and drop the first silently: merge the two"
                )
            else:
                seen[key] = line
        return super().construct_mapping(node, deep=deep)


def _read_yaml(path: Path) -> tuple[Any, list[str]]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a directory, expected a YAML file") from None
    except (PermissionError, UnicodeDecodeError, OSError) as error:
        raise ConfigError(f"{path}: cannot read config file ({error})") from None
    loader = _KeyCheckingLoader(text)
    try:
        return loader.get_single_data(), loader.duplicates
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(error, "problem", None) or "malformed YAML"
        raise ConfigError(f"{path}: not valid YAML{where}: {problem}") from None
    finally:
        loader.dispose()


MOVED = {
    "exposure.external.allow_anonymous": "sign-in off is now confirmed for every way in, not "
    "only this load balancer: remove it and list the ways in auth.allow_anonymous_through",
}
"""Keys of earlier releases: what replaces each."""


def _describe(error: dict[str, Any]) -> str:
    loc = tuple(error["loc"])
    path = _dotted(loc)
    if error["type"] == "extra_forbidden":
        hint = f"; {MOVED[path]}" if path in MOVED else _did_you_mean(loc)
        return f"  {path}: unknown key{hint}"
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] not in {"value_error", "assertion_error"} and "input" in error:
        message += f" (got {_short(error['input'])})"
    if error["type"] == "string_type" and isinstance(error.get("input"), int | float):
        message += "; YAML reads an unquoted number as a number: write it in quotes"
    return f"  {path or '(top level)'}: {message}"


def _dotted(loc: tuple[Any, ...]) -> str:
    path = ""
    for part in loc:
        if part == KEY_MARK:
            continue  # the error is about a mapping's key: the path already ends with it
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path


def _did_you_mean(loc: tuple[Any, ...]) -> str:
    """Suggest the closest valid key at the location of an unknown one."""
    model: type[BaseModel] | None = Settings
    for part in loc[:-1]:
        if model is None or isinstance(part, int):
            continue
        field = model.model_fields.get(str(part))
        annotation = field.annotation if field else None
        model = (
            annotation
            if isinstance(annotation, type) and issubclass(annotation, BaseModel)
            else None
        )
    if model is None:
        return ""
    valid = sorted(model.model_fields)
    close = difflib.get_close_matches(str(loc[-1]), valid, n=1, cutoff=0.6)
    if close:
        return f"; did you mean {close[0]!r}?"
    return f"; valid keys here: {', '.join(valid)}"


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
