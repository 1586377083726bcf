"""fastgen: hand-written kernels and complete models for the classic neural generative models.

Ops live in fastgen.ops (functional) and fastgen.nn (modules); fastgen.reference holds the
plain-PyTorch twin of every op. Choose the implementation with set_backend / use_backend or the
FASTGEN_BACKEND environment variable.
"""
from fastgen.backend import BACKENDS, get_backend, set_backend, use_backend
from fastgen import ops

__all__ = ["BACKENDS", "get_backend", "set_backend", "use_backend", "ops"]
__version__ = "0.1.0"
