"""Drop-in nn.Modules over the fastgen ops."""
from fastgen.nn.attention import GaussianRead, GaussianWrite

__all__ = ["GaussianRead", "GaussianWrite"]
