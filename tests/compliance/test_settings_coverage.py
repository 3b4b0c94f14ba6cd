"""Every documented setting reaches the gates: each leaf of the settings model (each row of
docs/configuration.md) takes a non-default value in at least one configuration of CONFIGS.

The gates (cdk-nag, cfn-lint, the Kubernetes schemas, the CLI's no-warnings check, the secret
scan, the snapshots) run once per configuration; a setting no configuration changes is code no
gate has seen. What counts as changed, by the setting's type:

- a boolean: its other value;
- a choice (Literal): each choice other than the default;
- an optional setting whose default is a value: `null` as well as another value;
- anything else (numbers, text, lists): a value other than the default (for a list that
  defaults to empty: a non-empty one).

A target no valid configuration can meet without a gate failing by design is listed in
EXEMPT with the reason; the test fails when an exemption goes stale (the target is met, or no
longer exists), so the list only shrinks.
"""

from __future__ import annotations

from functools import cache
from types import NoneType, UnionType
from typing import Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from config import Settings, load_settings
from config.reference import rows
from tests.conftest import CONFIGS

ANY_OTHER = object()
"""Target value: anything but the default (and but null, when null is a target of its own)."""

EXEMPT: dict[str, str] = {
    # `destroy` alone is meant to warn ("...removal_policy is destroy, but the context flag
    # allow_data_destroy=true is not set...") and keep the data, so a configuration with it
    # would fail the CLI's no-warnings gate by design. test_data_safety.py synthesizes both
    # settings with and without the flag instead.
    "database.removal_policy = 'destroy'": "warns by design without -c allow_data_destroy",
    "artifacts.removal_policy = 'destroy'": "warns by design without -c allow_data_destroy",
    # Passed through as one string (MLFLOW_AUTH_DEFAULT_PERMISSION) that no construct branches
    # on; NO_PERMISSIONS (test-maximal) exercises the path, and the launcher's unit tests read
    # every permission back from basic_auth.ini. A configuration per choice would add minutes
    # of synths for templates that differ in that one value.
    "auth.default_permission = 'USE'": "pass-through string; one non-default choice suffices",
    "auth.default_permission = 'EDIT'": "pass-through string; one non-default choice suffices",
    "auth.default_permission = 'MANAGE'": "pass-through string; one non-default choice suffices",
}


def leaf_paths() -> list[str]:
    """The dotted key of every leaf setting, as the configuration reference lists them."""
    return [row.split("`")[1] for row in rows(Settings)]


def field_at(path: str) -> FieldInfo:
    model: type[BaseModel] = Settings
    *parents, name = path.split(".")
    for part in parents:
        model = model.model_fields[part].annotation  # type: ignore[assignment]
    return model.model_fields[name]


def value_at(settings: Settings, path: str) -> Any:
    value: Any = settings
    for part in path.split("."):
        value = getattr(value, part)
    return value


def _choices(annotation: Any) -> tuple[tuple[Any, ...] | None, bool]:
    """The Literal's choices (None for other types), and whether null is allowed."""
    origin, args = get_origin(annotation), get_args(annotation)
    if origin in (Union, UnionType):
        rest = [a for a in args if a is not NoneType]
        choices, _ = _choices(rest[0]) if len(rest) == 1 else (None, False)
        return choices, NoneType in args
    if origin is Literal:
        return args, False
    return None, False


def targets(path: str) -> dict[str, Any]:
    """What must be seen for `path`, by label (the label is what EXEMPT names)."""
    field = field_at(path)
    default = field.get_default(call_default_factory=True)
    choices, nullable = _choices(field.annotation)
    wanted: dict[str, Any] = {}
    if field.annotation is bool:
        wanted[f"{path} = {not default}"] = not default
    elif choices is not None:
        for choice in choices:
            if choice != default:
                wanted[f"{path} = {choice!r}"] = choice
    else:
        wanted[f"{path} != {default!r}"] = ANY_OTHER
    if nullable and default is not None:
        wanted[f"{path} = null"] = None
    return wanted


def _meets(value: Any, target: Any, default: Any, nullable: bool) -> bool:
    if target is ANY_OTHER:
        return value != default and not (nullable and default is not None and value is None)
    return bool(value == target and type(value) is type(target))


@cache
def configured() -> dict[str, Settings]:
    return {name: load_settings(path) for name, path in CONFIGS.items()}


def coverage() -> dict[str, list[str]]:
    """Every target label and the configurations that meet it (empty: none does)."""
    found: dict[str, list[str]] = {}
    for path in leaf_paths():
        field = field_at(path)
        default = field.get_default(call_default_factory=True)
        _, nullable = _choices(field.annotation)
        for label, target in targets(path).items():
            found[label] = sorted(
                name
                for name, settings in configured().items()
                if _meets(value_at(settings, path), target, default, nullable)
            )
    return found


def test_every_setting_takes_a_non_default_value_somewhere() -> None:
    missing = [label for label, names in coverage().items() if not names and label not in EXEMPT]
    assert missing == [], (
        "no configuration in CONFIGS sets these; add them to tests/configs/maximal.yaml "
        "(new cluster) or minimal.yaml (existing), or a new tests/configs/*.yaml when they "
        f"conflict: {missing}"
    )


def test_exemptions_are_not_stale() -> None:
    found = coverage()
    gone = sorted(set(EXEMPT) - set(found))
    assert gone == [], f"exempt targets that no longer exist: {gone}"
    met = sorted(label for label in EXEMPT if found[label])
    assert met == [], f"exempt targets that a configuration now meets; drop them: {met}"


def test_the_walk_sees_the_whole_model() -> None:
    """The walk reaches nested models (their leaves, not the models themselves)."""
    paths = leaf_paths()
    assert "server.resources.cpu" in paths
    assert "exposure.external.allow_internet" in paths
    assert "server.resources" not in paths
    assert all(not isinstance(value_at(Settings(), p), BaseModel) for p in paths)
