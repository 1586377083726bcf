"""Checks shared by every model's config dataclass."""
from __future__ import annotations

from fastgen.memory import check_fits


def is_positive_int(value) -> bool:
    return is_non_negative_int(value) and value >= 1


def is_non_negative_int(value) -> bool:
    return not isinstance(value, bool) and isinstance(value, int) and value >= 0


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


def lstm_weights(inputs: int, hidden: int) -> int:
    """Weights of an LSTM cell (both biases included)."""
    return 4 * hidden * (inputs + hidden + 2)


def check_model_fits(name: str, weights: int, per_example: int) -> None:
    """ValueError unless a model of about ``weights`` float32 weights can train (weights, gradients
    and two Adam moments) with the ``per_example`` values one example keeps (its canvases or queues)
    within the memory this process can have: sizes such as T = 10**9 or 40 dilated layers per stack
    would otherwise allocate until the OS kills the process."""
    check_fits(4 * (4 * weights + per_example),
               f"{name}: a model of these sizes (about {_count(weights)} weights and {_count(per_example)} values "
               "per example)")


def _count(n: int) -> str:
    return f"{n:,}" if n < 10**15 else f"{float(min(n, 10**300)):.3g}"
