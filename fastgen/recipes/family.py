"""The Family protocol: what one family (a paper's models, or a kernel family) offers the command line,
the benchmarks and the demo, each with one signature. :mod:`fastgen.recipes.registry` lists the
families; ``fastgen {train,eval,sample,bench} <family>``, ``fastgen demo [family]`` and the GPU report
(``fastgen bench gpu``) are built from that table, so a new family brings its own modules and one line
there.

A family serves some of :data:`PARTS` (``verbs``); for each it implements the matching method:

  train   ``train(args) -> exit status``       ``fastgen train <name>``
  eval    ``evaluate(args) -> exit status``    ``fastgen eval <name>``
  sample  ``sample(args) -> exit status``      ``fastgen sample <name>``
  bench   ``bench(args) -> markdown``          ``fastgen bench <name>`` (args.threads and args.quick set)
  gpu     ``gpu_bench(quick) -> markdown``     its section of ``fastgen bench gpu``
  demo    ``demo(out, quick, budget) -> [(what, path)]``   its part of ``fastgen demo``

``add_arguments(verb, parser)`` adds the family's own flags to ``fastgen <verb> <name>`` (the flags
every family's ``bench`` takes are added by the CLI). Commands raise ``fastgen.cli.CLIError`` for a
user's mistake (printed in one line, exit status 2).
"""
from __future__ import annotations

import argparse
from abc import ABC
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Optional

VERBS = ("train", "eval", "sample", "bench")
PARTS = VERBS + ("gpu", "demo")


@dataclass(frozen=True)
class DemoBudget:
    """Seconds a family's demo part may take on 2 cores: ``fastgen demo`` and ``fastgen demo --quick``.
    The demo reports each part's time against it; a part skips its optional extras once over it."""

    full: float
    quick: float

    def seconds(self, quick: bool) -> float:
        return self.quick if quick else self.full


class Family(ABC):
    """One family's commands (see the module docstring); its fields may be class or instance attributes."""

    name: str                  # the CLI word: fastgen <verb> <name>
    title: str                 # how prose names it: "DRAW", "WaveNet"
    verbs: tuple[str, ...]     # the PARTS it serves
    help: Mapping[str, str]    # verb -> the line `fastgen <verb> --help` shows for it
    description: Mapping[str, str] = {}   # verb -> the paragraph of `fastgen <verb> <name> --help`
    sample_files: str = ""     # what `sample` writes, for `fastgen --help` ("PNG, GIF")
    demo_budget: Optional[DemoBudget] = None
    demo_run: bool = False     # its demo part trains into OUT/<name>-run, replaced by the next demo

    def serves(self, part: str) -> bool:
        return part in self.verbs

    def add_arguments(self, verb: str, parser: argparse.ArgumentParser) -> None:
        """Add this family's flags for ``verb`` (one of VERBS) to its subparser."""

    def train(self, args: argparse.Namespace) -> int:
        raise NotImplementedError(f"{self.name} does not train")

    def evaluate(self, args: argparse.Namespace) -> int:
        raise NotImplementedError(f"{self.name} does not evaluate")

    def sample(self, args: argparse.Namespace) -> int:
        raise NotImplementedError(f"{self.name} does not sample")

    def bench(self, args: argparse.Namespace) -> str:
        raise NotImplementedError(f"{self.name} has no benchmark")

    def gpu_bench(self, quick: bool) -> str:
        raise NotImplementedError(f"{self.name} has no GPU benchmark")

    def demo(self, out: Path, quick: bool, budget: float) -> list[tuple[str, Path]]:
        raise NotImplementedError(f"{self.name} has no demo part")

    def command(self, verb: str):
        """The method behind ``fastgen <verb> <name>`` for train, eval and sample."""
        return {"train": self.train, "eval": self.evaluate, "sample": self.sample}[verb]
