"""Where the Triton tests run; import this before torch or triton in every tests/triton module.

TRITON_INTERPRET=1 must be in the environment before triton is imported, so importing this module
sets it first thing. Then DEVICE is "cpu" (CPU tensors under the interpreter, the normal case here).
If triton was imported before the variable was set (a test module collected earlier imported it:
torch's opcheck does), the interpreter cannot be switched on in this process any more, because
triton decorates its own language functions at import time; then the tests run on a GPU if there
is one, and skip otherwise.
"""
import os
import sys

_TRITON_IMPORTED_EARLIER = "triton" in sys.modules and os.environ.get("TRITON_INTERPRET") != "1"
os.environ["TRITON_INTERPRET"] = "1"

import pytest  # noqa: E402
import torch  # noqa: E402

pytest.importorskip("triton")

if not _TRITON_IMPORTED_EARLIER:
    DEVICE = "cpu"
elif torch.cuda.is_available():
    DEVICE = "cuda"
else:
    pytest.skip(
        "triton was imported before TRITON_INTERPRET=1 was set (by a test module collected earlier) "
        "and there is no GPU: run tests/triton in its own pytest process, or set TRITON_INTERPRET=1 "
        "before pytest starts",
        allow_module_level=True,
    )
