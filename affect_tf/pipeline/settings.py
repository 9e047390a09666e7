"""Reading pipeline settings: the YAML file and ``AFFECT_*`` strings, coerced to each field's
type (``affect_tf.pipeline.config.PipelineConfig.load``)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from affect_tf.core.errors import UserError

CONFIG_ENV = "AFFECT_CONFIG"


class ConfigError(UserError):
    """A pipeline setting that is missing, unknown or out of range; the message names it."""


def read_yaml(path: Path) -> dict:
    import yaml

    if not path.is_file():
        raise ConfigError(f"Expected a YAML file. Received: {CONFIG_ENV}={str(path)!r} (missing)")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        raise ConfigError(f"Expected valid YAML in {path}. Received: {error}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"Expected a mapping of settings in {path}. Received: {type(data)}")
    return data


def coerce(name: str, value: Any, field: dataclasses.Field) -> Any:
    """Turns a YAML value or an environment string into the field's type."""
    kind = str(field.type)
    optional = kind.endswith(" | None")
    kind = kind.removesuffix(" | None")
    try:
        if optional and (
            value is None or (isinstance(value, str) and value.lower() in ("none", "null"))
        ):
            return None
        if isinstance(value, str):
            if kind == "bool":
                if value.lower() not in ("1", "0", "true", "false", "yes", "no"):
                    raise ValueError(value)
                return value.lower() in ("1", "true", "yes")
            if kind.startswith("int"):
                return None if value.lower() in ("none", "null") else int(value)
            if kind == "float":
                return float(value)
            if kind.startswith("tuple"):
                return tuple(value.replace(",", " ").split())
            if kind.startswith("Mapping"):
                return {k: float(v) for k, v in json.loads(value).items()}
            return value
        if kind.startswith("tuple"):
            return tuple(value)
        if kind.startswith("Mapping"):
            return {str(k): float(v) for k, v in dict(value).items()}
        if kind == "float":
            return float(value)
        return value
    except (ValueError, TypeError, AttributeError, json.JSONDecodeError):
        raise ConfigError(f"Expected {name} of type {kind}. Received: {name}={value!r}") from None
