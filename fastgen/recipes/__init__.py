"""Recipes: the data, model and Trainer wiring behind ``fastgen train|eval|sample`` and the demo,
one module (or package) per paper family (the models themselves live in fastgen.models, the loop in
fastgen.train). What every recipe shares about runs is in :mod:`.runs`; the :class:`~.family.Family`
protocol and the table of families (:mod:`.registry`) drive the CLI, the benchmarks and the demo."""
from . import draw, wavenet

__all__ = ["draw", "wavenet"]
