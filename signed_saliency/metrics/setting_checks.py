"""What a metric's setting may be: the checks a metric declares with ``checks=`` at
``register`` (run when a config loads, before any data), and the type check every setting
gets from its default."""

from __future__ import annotations

from typing import Any, Callable, Optional, Sequence

# A setting's check: None when a value is fine, else what the value must be ("at least 1").
SettingCheck = Callable[[Any], Optional[str]]


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def at_least(low: float) -> SettingCheck:
    return lambda value: None if _is_number(value) and value >= low else f"a number at least {low}"


def above(low: float) -> SettingCheck:
    return lambda value: None if _is_number(value) and value > low else f"a number above {low}"


def fraction(*, below_one: bool = False) -> SettingCheck:
    """A fraction of the pixels: in [0, 1], or [0, 1) where all of them cannot be taken."""
    interval = "[0, 1)" if below_one else "[0, 1]"
    return lambda value: (None if _is_number(value) and 0 <= value and (value < 1 if below_one else value <= 1)
                          else f"a fraction in {interval}")


def odd_size(value: Any) -> Optional[str]:
    return None if isinstance(value, int) and not isinstance(value, bool) and value > 0 and value % 2 else "an odd positive integer"


def one_of(valid: Sequence[str]) -> SettingCheck:
    return lambda value: None if value in valid else f"one of {', '.join(valid)}"


def each(check: SettingCheck) -> SettingCheck:
    """A non-empty list whose every item passes ``check``."""

    def check_all(values: Any) -> Optional[str]:
        if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or not values:
            return "a non-empty list"
        problems = [check(value) for value in values]
        problem = next((problem for problem in problems if problem is not None), None)
        return None if problem is None else f"a non-empty list of items each {problem}"

    return check_all


def optional(check: SettingCheck) -> SettingCheck:
    return lambda value: None if value is None else (None if check(value) is None else f"{check(value)} or None")


def name_or_number(value: Any) -> Optional[str]:
    """A setting that takes a name or a number (a Quantus baseline): whatever its default's type."""
    return None if isinstance(value, (str, int, float)) and not isinstance(value, bool) else "a name or a number"


name_or_number.any_type = True  # the check replaces the type check of the default


def _same_kind(default: Any, value: Any) -> Optional[str]:
    """The check every setting gets from its default's type (a None default accepts anything)."""
    if isinstance(default, bool):
        return None if isinstance(value, bool) else "true or false"
    if isinstance(default, int):
        return None if isinstance(value, int) and not isinstance(value, bool) else "an integer"
    if isinstance(default, float):
        return None if _is_number(value) else "a number"
    if isinstance(default, str):
        return None if isinstance(value, str) else "a string"
    if isinstance(default, (tuple, list)):
        return None if isinstance(value, (tuple, list)) else "a list"
    return None
