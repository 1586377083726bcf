"""Drop-in nn.Modules over the fastgen ops, and the probability helpers the models share
(fastgen.nn.distributions)."""
from fastgen.nn import distributions
from fastgen.nn.attention import GaussianRead, GaussianWrite
from fastgen.nn.masked_conv import MaskedConv2d

__all__ = ["GaussianRead", "GaussianWrite", "MaskedConv2d", "distributions"]
