"""``python -m fastgen``: the same command line as the ``fastgen`` console script."""
from fastgen.cli import main

raise SystemExit(main())
