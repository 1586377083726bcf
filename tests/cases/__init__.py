"""One case list per op, shared by the CPU kernel tests (tests/ops), the Triton tests under the
interpreter (tests/triton) and the GPU tests (tests/gpu): the pattern of pytorch/extension-cpp's
test_extension.py, where one `sample_inputs` feeds the correctness, gradient and opcheck tests.

A case is a small frozen description (a shape, a regime, a bad call) with an id; its tensors are drawn
fresh when a test runs, on the device that test asks for. So pytest ids are fixed at collection time,
every run sees new numbers, and the same list runs on "cpu", under the Triton interpreter or on "cuda"
by changing one device argument.

Modules: attention (attention_read / attention_write, their parameter domain), lstm
(lstm_cell_pointwise), draw_generate, wavenet_generate, masked_conv. Each also names its ops' public
calls and reference twins (ROUTE_CALLS, ROUTE_TWINS) for the backend-rule tests. The shared "bad input raises with a message
naming X" machinery is BadInput / assert_bad_input below.
"""
from __future__ import annotations

import importlib
import pkgutil
import re
from dataclasses import dataclass
from typing import Callable, Iterable

import pytest


@dataclass(frozen=True)
class BadInput:
    """A call that must raise `error` with a message matching the regex `message`.

    `call(device)` builds its (small) inputs on `device` and makes the call. `devices` lists the
    device types the check holds on (a dtype allowed on CUDA is rejected on the CPU, say)."""

    name: str
    call: Callable[[str], object]
    error: type[BaseException]
    message: str
    devices: tuple[str, ...] = ("cpu", "cuda")


def assert_bad_input(case: BadInput, device: str) -> None:
    """The call raises case.error, and its message names the problem (re.search of case.message)."""
    with pytest.raises(case.error) as caught:
        case.call(device)
    text = str(caught.value)
    assert re.search(case.message, text), f"{case.name}: message {text!r} does not match {case.message!r}"


def bad_inputs_for(cases: Iterable[BadInput], device_type: str) -> list:
    """pytest params of the cases that hold on device_type, named by case."""
    return [pytest.param(c, id=c.name) for c in cases if device_type in c.devices]


SLOW = pytest.mark.slow  # deselected unless --runslow (tests/conftest.py): interpreter-heavy cases


def params(cases: Iterable, slow: Callable[[object], bool] = lambda case: False) -> list:
    """pytest params of cases (each with an `id`), the ones `slow(case)` picks marked SLOW."""
    return [pytest.param(c, id=c.id, marks=(SLOW,) if slow(c) else ()) for c in cases]


def _case_modules():
    return [importlib.import_module(f"{__name__}.{m.name}") for m in pkgutil.iter_modules(__path__)]


def route_calls() -> dict[str, Callable]:
    """op -> builder(dtype) of a zero-argument call of the op's public entry point, from every case
    module's ROUTE_CALLS (tests/ops/test_route.py runs each op through the backend rule with it)."""
    return {op: build for module in _case_modules() for op, build in getattr(module, "ROUTE_CALLS", {}).items()}


def route_twins() -> dict[str, tuple[object, str]]:
    """op -> (reference module, function name): the twin an op runs when routed to "reference"."""
    return {op: (importlib.import_module(module), name) for m in _case_modules()
            for op, (module, name) in getattr(m, "ROUTE_TWINS", {}).items()}
