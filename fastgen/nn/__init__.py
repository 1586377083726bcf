"""Drop-in nn.Modules over the fastgen ops, and the probability helpers the models share
(fastgen.nn.distributions)."""
from fastgen.nn import distributions
from fastgen.nn.attention import GaussianRead, GaussianWrite

__all__ = ["GaussianRead", "GaussianWrite", "distributions"]
