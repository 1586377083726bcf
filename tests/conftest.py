"""Test-session setup shared by every test directory."""
import os

import torch

# Without a GPU, Triton kernels run under the interpreter. Triton reads TRITON_INTERPRET when a kernel
# is defined, so it must be set before anything (opcheck, fastgen.ops on a CUDA build) imports them.
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")
