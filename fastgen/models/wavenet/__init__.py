"""WaveNet (van den Oord et al. 2016): the network (model) and its generation driver (generation:
cache, weight packing, stream / generate / step, mu-law output) over fastgen.ops.wavenet's kernels."""
from fastgen.models.wavenet import generation
from fastgen.models.wavenet.generation import WaveNetCache
from fastgen.models.wavenet.model import UPSAMPLERS, WaveNet, WaveNetConfig, loss_fn

__all__ = ["UPSAMPLERS", "WaveNet", "WaveNetCache", "WaveNetConfig", "generation", "loss_fn"]
