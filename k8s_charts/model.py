"""One model per settings group: the config file's section, a construct's prop and the chart's
prop are the same object.

A group is a `SettingsModel`: pydantic, frozen, unknown keys refused, each field's type, default,
bounds and description declared once (the configuration reference is generated from the
descriptions). `RULES` are the rules between its fields; they run on the valid fields even when
others are not, so one run reports every problem. Made directly by a library user, a model that
breaks a rule raises `InvalidProps` listing every problem; read from the config file, the same
problems come out with their key paths (config/loader.py).
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Annotated, Any, ClassVar, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    ModelWrapValidatorHandler,
    TypeAdapter,
    ValidationError,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from .rules import InvalidProps, Path, Rule, broken_rules


def _rule_error(key: str, why: str, data: object) -> InitErrorDetails:
    return InitErrorDetails(
        type=PydanticCustomError("value_error", "{msg}", {"msg": why}),
        loc=tuple(key.split(".")),
        input=data,
    )


class SettingsModel(BaseModel):
    """Frozen, and unknown keys are errors (a typo must not silently keep a default)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    RULES: ClassVar[tuple[Rule, ...]] = ()

    @model_validator(mode="wrap")
    @classmethod
    def _every_problem(cls, data: Any, handler: ModelWrapValidatorHandler[Any]) -> Any:
        if not cls.RULES:
            return handler(data)
        try:
            model = handler(data)
        except ValidationError as error:
            if not isinstance(data, dict):
                raise
            errors = error.errors()
            invalid = {tuple(str(part) for part in e["loc"]) for e in errors if e["loc"]}
            values = cls._valid_fields(data, invalid)
            broken = broken_rules(values, cls.RULES, invalid, set(data))
            if not broken:
                raise
            # The errors as they were (type, message, place), with the broken rules added.
            lines = [
                InitErrorDetails(
                    type=PydanticCustomError(e["type"], "{msg}", {"msg": e["msg"]}),
                    loc=e["loc"],
                    input=e["input"],
                )
                for e in errors
            ]
            raise ValidationError.from_exception_data(
                cls.__name__, [*lines, *(_rule_error(k, w, data) for k, w in broken)]
            ) from None
        broken = broken_rules(model, cls.RULES, set(), model.model_fields_set)
        if broken:
            raise ValidationError.from_exception_data(
                cls.__name__, [_rule_error(k, w, data) for k, w in broken]
            )
        return model

    @classmethod
    def _valid_fields(cls, data: dict[str, Any], invalid: set[Path]) -> SimpleNamespace:
        """The fields that passed, validated on their own (defaults for those not given); of
        a section with invalid fields, its valid ones, so a rule between sections still runs
        on them."""
        values = {}
        for name, field in cls.model_fields.items():
            inside = {path[1:] for path in invalid if path[:1] == (name,)}
            section = field.annotation
            if not inside:
                if name in data:
                    metadata = field.metadata
                    adapter = TypeAdapter(Annotated[section, *metadata] if metadata else section)
                    values[name] = adapter.validate_python(data[name])
                else:
                    values[name] = field.get_default(call_default_factory=True)
            elif (
                () not in inside
                and isinstance(section, type)
                and issubclass(section, SettingsModel)
                and isinstance(data.get(name, {}), dict)
            ):
                values[name] = section._valid_fields(data.get(name, {}), inside)
        return SimpleNamespace(**values)


class Props(SettingsModel):
    """A settings group a library user makes by hand: bad values raise InvalidProps."""

    def __init__(self, /, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as error:
            raise InvalidProps(describe(type(self).__name__, error)) from None

    # pydantic calls an overridden __init__ for a nested model too (the config file's section),
    # where its errors must stay pydantic's, with their key paths; marked as the base __init__
    # (pydantic's own flag, _model_construction.py), it runs for direct construction only.
    __init__.__pydantic_base_init__ = True  # type: ignore[attr-defined]

    def replace(self, **changes: Any) -> Self:
        """A copy with `changes`, checked as a new one is (pydantic's model_copy is not).
        Only the fields set on this one are passed on, so a rule about a field the user left
        at its default (`given`) judges the copy as it judged the original."""
        given = {name: getattr(self, name) for name in self.model_fields_set}
        return type(self)(**{**given, **changes})


KEY_MARK = "[key]"
"""pydantic's last `loc` item for an error in a mapping's key (the item before is the key)."""


def describe(name: str, error: ValidationError) -> str:
    """Every problem of `error`, one per line, at its field's path."""
    lines = []
    for item in error.errors(include_url=False):
        loc = [p for p in item["loc"] if p != KEY_MARK]
        where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc)
        message = item["msg"].removeprefix("Value error, ")
        # A rule's or a check's own message says what is wrong; a type's or a bound's does
        # not say what it got (the config loader does the same).
        if item["type"] not in {"value_error", "assertion_error"}:
            message += f" (got {item['input']!r})"
        lines.append(f"  {where.removeprefix('.')}: {message}")
    return f"{name}: invalid props\n" + "\n".join(lines)
