"""Checks shared by every model's config dataclass."""
from __future__ import annotations


def is_positive_int(value) -> bool:
    return not isinstance(value, bool) and isinstance(value, int) and value >= 1


def check_positive_ints(cfg, name: str, fields) -> None:
    for field in fields:
        value = getattr(cfg, field)
        if not is_positive_int(value):
            raise ValueError(f"{name}: {field} must be a positive int, got {value!r}")


def resolve_config(name: str, config_cls, config, overrides: dict):
    """The model's config: the one passed, or one built from keyword overrides (not both)."""
    if config is None:
        return config_cls(**overrides)
    if overrides:
        raise ValueError(f"{name}: pass a config ({config_cls.__name__}) or keyword overrides, not both")
    return config
