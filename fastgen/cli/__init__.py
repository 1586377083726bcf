"""The ``fastgen`` command line (also ``python -m fastgen``): :mod:`.main` builds the commands from the
family table (fastgen.recipes.registry); :mod:`.args` holds what every command shares; each family's
commands live in their own module (:mod:`.attention`, :mod:`.draw`, :mod:`.wavenet`), the demo runner
in :mod:`.demo`."""
from fastgen.cli.args import PROG, CLIError
from fastgen.cli.main import build_parser, main

__all__ = ["CLIError", "PROG", "build_parser", "main"]
