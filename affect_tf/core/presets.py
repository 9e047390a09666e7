"""Frozen dataclass configurations with named presets: the one implementation of ``replace``,
``to_dict``/``from_dict`` and preset lookup that ``AffectConfig`` and ``GANConfig`` share."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, TypeVar

C = TypeVar("C", bound="FrozenConfig")


class FrozenConfig:
    """Mixin for a ``@dataclasses.dataclass(frozen=True)`` config validated in __post_init__.

    ``TUPLE_FIELDS`` name the fields that JSON (and callers) may give as lists.
    """

    TUPLE_FIELDS: tuple[str, ...] = ()

    def replace(self: C, **changes: Any) -> C:
        """A copy with some fields changed (validated)."""
        for key in self.TUPLE_FIELDS:
            if key in changes:
                changes[key] = tuple(changes[key])
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        """The fields as plain JSON-able values."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls: type[C], values: Mapping[str, Any]) -> C:
        """The config of ``to_dict``'s output (lists back to tuples; unknown keys rejected)."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ValueError(
                f"Expected {cls.__name__} fields. Received: unknown keys {sorted(unknown)}"
            )
        values = dict(values)
        for key in cls.TUPLE_FIELDS:
            if key in values:
                values[key] = tuple(values[key])
        return cls(**values)


def get_from(presets: Mapping[str, C], name: str, kind: str = "preset", **overrides: Any) -> C:
    """``presets[name]``, optionally with fields overridden.

    Raises:
        ValueError: For an unknown name (listing the known ones) or field.
    """
    if name not in presets:
        raise ValueError(f"Expected a {kind} in {sorted(presets)}. Received: preset={name!r}")
    return presets[name].replace(**overrides) if overrides else presets[name]


def lazy_attributes(package: str, table: Mapping[str, str]):
    """A module ``__getattr__`` that imports ``table[name]`` (a module path) on first use, so a
    package's names are importable without loading TensorFlow for the light ones."""
    import importlib

    def __getattr__(name: str) -> Any:  # noqa: N807 - the module hook's name
        if name in table:
            return getattr(importlib.import_module(table[name]), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__
