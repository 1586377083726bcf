"""Code layout rules of issue #12 that a reviewer would otherwise have to re-check by hand."""
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "fastgen"
MAX_LINES = 600


def test_no_module_in_the_package_exceeds_600_lines():
    long = {str(p.relative_to(PACKAGE)): n for p in sorted(PACKAGE.rglob("*.py"))
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert long == {}, f"split these modules (lines): {long}"
