"""Numbers read from environment variables, checked when the code location loads: a value that cannot work stops
it with one line naming the variable, what is wrong and what to give instead."""

from __future__ import annotations

from collections.abc import Mapping

from afas_pipeline.lib.text import printable


class SettingError(ValueError):
    """A setting that cannot work: one line naming the variable, what is wrong and what to give instead."""


def given(env: Mapping[str, str], name: str) -> str | None:
    """The variable's value, trimmed; None when it is unset or blank."""
    value = env.get(name, "").strip()
    return value or None


def whole_number(env: Mapping[str, str], name: str, default: int, *, minimum: int, maximum: int,
                 unit: str = "") -> int:
    """A whole number from `minimum` to `maximum` (the default when unset)."""
    value = given(env, name)
    if value is None:
        return default
    allowed = f"use {minimum} to {maximum}{unit}, e.g. {default}"
    try:
        number = int(value)
    except ValueError:
        raise SettingError(f"{name}='{printable(value)}' is not a whole number: {allowed}") from None
    if not minimum <= number <= maximum:
        raise SettingError(f"{name}={number} is out of range: {allowed}")
    return number


def seconds(env: Mapping[str, str], name: str, default: float, *, maximum: float) -> float:
    """A number of seconds from 0 to `maximum` (the default when unset)."""
    value = given(env, name)
    if value is None:
        return default
    allowed = f"use a number of seconds from 0 to {maximum:g}, e.g. {default:g}"
    try:
        number = float(value)
    except ValueError:
        raise SettingError(f"{name}='{printable(value)}' is not a number: {allowed}") from None
    if not 0 <= number <= maximum:  # also refuses nan
        raise SettingError(f"{name}={printable(value)} is out of range: {allowed}")
    return number


YES, NO = ("true", "yes", "on", "1"), ("false", "no", "off", "0")


def yes_no(env: Mapping[str, str], name: str, default: bool) -> bool:
    """A switch: true/yes/on/1 or false/no/off/0 (the default when unset)."""
    value = given(env, name)
    if value is None:
        return default
    if value.lower() in YES:
        return True
    if value.lower() in NO:
        return False
    raise SettingError(f"{name}='{printable(value)}' is not a switch: use true or false, e.g. "
                       f"{str(default).lower()}")
