"""Run a snippet of Python in a subprocess whose address space is capped (RLIMIT_AS), so that a test
of a memory bomb fails fast with a MemoryError instead of exhausting the machine when a size check
regresses."""
from __future__ import annotations

import subprocess
import sys
import textwrap

LIMIT = 2 << 30  # torch and fastgen take about 0.7 GB of address space once imported

_PRELUDE = """
import resource
resource.setrlimit(resource.RLIMIT_AS, ({limit}, {limit}))
"""


def run_limited(code: str, limit: int = LIMIT, timeout: float = 120) -> subprocess.CompletedProcess:
    """``code`` run by this Python under an address-space limit of ``limit`` bytes (stdout, stderr
    captured as text)."""
    script = _PRELUDE.format(limit=limit) + textwrap.dedent(code)
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=timeout)


def expect_error(code: str, error: str, *words: str) -> str:
    """Run ``code`` (which must raise) under the limit; assert it raised ``error`` (a class name) with
    every one of ``words`` in its message, and return the message."""
    wrapped = (f"try:\n{textwrap.indent(textwrap.dedent(code), '    ')}\n"
               "except Exception as e:\n    print(type(e).__name__); print(e)\n"
               "else:\n    print('no error')\n")
    done = run_limited(wrapped)
    assert done.returncode == 0, done.stderr[-2000:]
    name, _, message = done.stdout.partition("\n")
    assert name == error, done.stdout[-2000:]
    for word in words:
        assert word in message, message
    return message
