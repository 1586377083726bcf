"""ctest smoke test of the CMake-built CPU extension.

usage: python smoke_cpu_extension.py path/to/_C.so [run|schema-only]

Loads the library with torch.ops.load_library (so registration runs) and checks that the attention ops
exist. In "run" mode (the default; CMake picks "schema-only" when csrc/cpu has no sources) it also
checks each op once against fastgen/reference/attention.py in float64, backward ops against autograd of
the reference. The real test suite lives in tests/; this only proves the CMake build links and registers.
"""
import importlib.util
import pathlib
import sys

import torch

ROOT = pathlib.Path(__file__).resolve().parents[2]


def load_reference():
    # By file path, so this test does not depend on what the fastgen package imports at start.
    spec = importlib.util.spec_from_file_location("attention_ref", ROOT / "fastgen" / "reference" / "attention.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def check(name, got, want, tol=1e-10):
    err = (got - want).abs().max().item()
    print(f"{name}: max abs error {err:.3g}")
    if not err <= tol:
        raise SystemExit(f"{name}: max abs error {err} > {tol}")


def main():
    torch.ops.load_library(sys.argv[1])
    ops = torch.ops.fastgen
    for name in ("attention_read", "attention_read_backward", "attention_write", "attention_write_backward"):
        getattr(ops, name)  # raises if the schema was not registered
    if (sys.argv[2] if len(sys.argv) > 2 else "run") == "schema-only":
        print("ops registered (no CPU kernels built: schema-only)")
        return
    ref = load_reference()
    torch.manual_seed(0)
    B, C, H, W, N = 2, 3, 9, 7, 4
    x = torch.rand(B, C, H, W, dtype=torch.float64, requires_grad=True)
    w = torch.rand(B, C, N, N, dtype=torch.float64, requires_grad=True)
    canvas = torch.rand(B, C, H, W, dtype=torch.float64)
    params = (0.3 * torch.randn(B, 5, dtype=torch.float64)).requires_grad_()

    out = ref.attention_read(x, params, N)
    check("attention_read", ops.attention_read(x.detach(), params.detach(), N), out.detach())
    g = torch.randn_like(out)
    want = torch.autograd.grad(out, (x, params), g)
    got = ops.attention_read_backward(g, x.detach(), params.detach(), N)
    check("attention_read_backward grad_x", got[0], want[0])
    check("attention_read_backward grad_params", got[1], want[1])

    out = ref.attention_write(w, params, H, W)
    check("attention_write", ops.attention_write(w.detach(), params.detach(), H, W), out.detach())
    check("attention_write canvas", ops.attention_write(w.detach(), params.detach(), H, W, canvas),
          out.detach() + canvas)
    g = torch.randn_like(out)
    want = torch.autograd.grad(out, (w, params), g)
    got = ops.attention_write_backward(g, w.detach(), params.detach(), H, W)
    check("attention_write_backward grad_w", got[0], want[0])
    check("attention_write_backward grad_params", got[1], want[1])


if __name__ == "__main__":
    main()
