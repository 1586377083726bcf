"""The family table: every family fastgen serves, in the order the CLI lists them and the demo runs
them. Each line names the module and attribute holding the family's :class:`~fastgen.recipes.family.Family`
(the module that adapts its recipe to the command line); they are imported when first asked for, so
that reading the table imports no model. Adding a family: its own modules, and one line here."""
from __future__ import annotations

import importlib
from typing import Optional

from fastgen.recipes.family import PARTS, Family

FAMILIES: tuple[str, ...] = (
    "fastgen.cli.attention:FAMILY",
    "fastgen.cli.draw:DRAW",
    "fastgen.cli.draw:ALIGNDRAW",
    "fastgen.cli.wavenet:FAMILY",
    "fastgen.cli.pixelcnn:PIXELCNN",
    "fastgen.cli.pixelcnn:GATED_PIXELCNN",
    "fastgen.cli.pixelrnn:PIXELRNN",
    "fastgen.cli.masked_conv:FAMILY",
    "fastgen.cli.irgan:FAMILY",
    "fastgen.cli.vaegan:VAEGAN_FAMILY",
    "fastgen.cli.vaegan:VAE_FAMILY",
    "fastgen.cli.avb:FAMILY",
)


def _load(entry: str) -> Family:
    module, _, attribute = entry.partition(":")
    family = getattr(importlib.import_module(module), attribute)
    if not isinstance(family, Family):
        raise TypeError(f"registry entry {entry!r} is a {type(family).__name__}, not a Family")
    unknown = [part for part in family.verbs if part not in PARTS]
    if unknown:
        raise TypeError(f"family {family.name!r} serves unknown parts {unknown}; choose from {', '.join(PARTS)}")
    if family.serves("demo") and family.demo_budget is None:
        raise TypeError(f"family {family.name!r} has a demo part but no demo_budget")
    return family


def families(part: Optional[str] = None) -> list[Family]:
    """The registered families in table order; with ``part``, those that serve it."""
    if part is not None and part not in PARTS:
        raise ValueError(f"unknown part {part!r}; choose from {', '.join(PARTS)}")
    found = [_load(entry) for entry in FAMILIES]
    names = [f.name for f in found]
    if len(set(names)) != len(names):
        raise TypeError(f"two registry entries share a name: {names}")
    return [f for f in found if part is None or f.serves(part)]


def family(name: str, part: Optional[str] = None) -> Family:
    """The family called ``name`` (serving ``part``); ValueError naming the choices."""
    choices = families(part)
    for f in choices:
        if f.name == name:
            return f
    raise ValueError(f"unknown family {name!r}{f' for {part}' if part else ''}; choose one of "
                     f"{', '.join(f.name for f in choices)}")
