"""Recipes: the data, model and Trainer wiring behind ``fastgen train|eval|sample`` and the demo,
one module per paper family (the models themselves live in fastgen.models, the loop in
fastgen.train)."""
from . import draw, wavenet

__all__ = ["draw", "wavenet"]
