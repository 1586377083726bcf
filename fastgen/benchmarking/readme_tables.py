"""The README's performance tables, generated from the result files in ``benchmarks/results/``.

The README shows short versions of the full benchmark tables. Copying numbers by hand lets them drift
from the measured files, so every such table sits between two markers in README.md::

    <!-- results:wavenet -->
    ... generated: do not edit ...
    <!-- /results:wavenet -->

and is rendered here from the markdown the benchmark wrote (``fastgen bench wavenet --out
benchmarks/results/wavenet.md`` and friends). After re-measuring, refresh the README with::

    python -m fastgen.benchmarking.readme_tables          # rewrites the marked blocks of README.md
    python -m fastgen.benchmarking.readme_tables --check  # exit 1 when a block disagrees (run by tests)
"""
from __future__ import annotations

import argparse
import math
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "benchmarks" / "results"
README = ROOT / "README.md"


@dataclass
class Table:
    heading: str                 # the last markdown heading above the table ("" when none)
    columns: list[str]
    rows: list[dict[str, str]] = field(default_factory=list)


@dataclass
class ResultFile:
    name: str                    # file name, for the provenance line
    bullets: dict[str, str]      # "- Key: value" lines (Machine, Date, ...), first occurrence wins
    tables: list[Table]

    def table(self, heading: str) -> Table:
        found = [t for t in self.tables if t.heading == heading]
        if len(found) != 1:
            raise ValueError(f"{self.name}: expected one table under the heading {heading!r}, found {len(found)}")
        return found[0]

    def bullet(self, key: str) -> str:
        if key not in self.bullets:
            raise ValueError(f"{self.name}: no '- {key}:' line")
        return self.bullets[key]


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def parse_results(text: str, name: str) -> ResultFile:
    """Every markdown table of a result file, keyed by the heading above it."""
    bullets: dict[str, str] = {}
    tables: list[Table] = []
    heading = ""
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("#"):
            heading = line.lstrip("#").strip()
        elif (m := re.match(r"- ([A-Z][\w ]*): (.*)", line)) and m.group(1) not in bullets:
            bullets[m.group(1)] = m.group(2).strip()
        elif line.startswith("|") and i + 1 < len(lines) and re.fullmatch(r"\|[-:| ]+\|", lines[i + 1].strip()):
            table = Table(heading, _cells(line))
            i += 2
            while i < len(lines) and lines[i].startswith("|"):
                values = _cells(lines[i])
                if len(values) != len(table.columns):
                    raise ValueError(f"{name}: a row of the table under {heading!r} has {len(values)} cells, "
                                     f"the header {len(table.columns)}: {lines[i]!r}")
                table.rows.append(dict(zip(table.columns, values)))
                i += 1
            tables.append(table)
            continue
        i += 1
    return ResultFile(name, bullets, tables)


def read_results(name: str, folder: Path = RESULTS) -> ResultFile:
    path = folder / name
    return parse_results(path.read_text(encoding="utf-8"), name)


def _number(cell: str) -> float:
    """'479.5 ±1%' -> 479.5, '26,692' -> 26692, '9.9%' -> 9.9, '5.48×' -> 5.48."""
    m = re.match(r"[-+]?[\d,]*\.?\d+", cell.strip())
    if m is None:
        raise ValueError(f"not a number: {cell!r}")
    return float(m.group(0).replace(",", ""))


def _sig3(x: float) -> str:
    """Three significant digits, trailing zeros kept (1.60, 17.4, 583)."""
    decimals = max(0, 2 - math.floor(math.log10(abs(x)))) if x else 0
    return f"{x:.{decimals}f}"


def _markdown(columns: list[str], rows: list[list[str]], align: str) -> list[str]:
    out = ["| " + " | ".join(columns) + " |", "|" + "|".join("---:" if a == "r" else "---" for a in align) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return out


def _provenance(result: ResultFile) -> str:
    return f"_From `benchmarks/results/{result.name}`: {result.bullet('Machine')}; {result.bullet('Date')}._"


# -- the README's tables ------------------------------------------------------------------------------

ATTENTION_SECTIONS = ("forward, 1 thread", "forward+backward, 1 thread", "forward, 2 threads",
                      "forward+backward, 2 threads")


def attention_table(result: ResultFile) -> list[str]:
    """Per workload and thread count: µs per call for eager, torch.compile and the C++ kernels."""
    out = [_provenance(result), ""]
    for section in ATTENTION_SECTIONS:
        rows = [[r["shape B×C×H×W, N"], f"{_number(r['eager µs']):.0f}", f"{_number(r['compile µs']):.0f}",
                 f"{_number(r['fastgen-cpu µs']):.0f}", r["fastgen vs eager"], r["fastgen vs compile"],
                 f"{_number(r['fastgen-cpu % floor']):.0f}%"]
                for r in result.table(section).rows]
        out += [f"**{section}** (µs per call, median)", ""]
        out += _markdown(["B×C×H×W, N", "eager", "torch.compile", "fastgen cpu", "vs eager", "vs compile",
                          "fastgen % of floor"], rows, "lrrrrrr")
        out.append("")
    return out[:-1]


# draw.md workload -> (README label, fastgen provider row, what the fast path is)
DRAW_ROWS = (
    ("sample, batch 1", "DRAW sample, batch 1, T=64", "fastgen fused", "fused sampler"),
    ("train step, B=64", "DRAW training step, B=64, T=64", "fastgen", "hand-written core"),
    ("AlignDRAW train step, B=64", "AlignDRAW training step, B=64, T=32", "fastgen", "hand-written core"),
)


def draw_table(result: ResultFile, threads: str = "1") -> list[str]:
    table = result.tables[0]
    if table.columns[:3] != ["workload", "threads", "provider"]:
        raise ValueError(f"draw.md: the first table's columns are {table.columns[:3]}, not workload/threads/provider")
    rows = {(r["workload"], r["threads"], r["provider"]): r for r in table.rows}
    out = []
    for workload, label, provider, what in DRAW_ROWS:
        ref, fast = rows[(workload, threads, "reference")], rows[(workload, threads, provider)]
        ref_ms, fast_ms = _number(ref["ms"]), _number(fast["ms"])
        out.append([label, f"{_sig3(ref_ms)} ms", f"{_sig3(fast_ms)} ms ({what})", f"{_sig3(ref_ms / fast_ms)}×"])
    return [_provenance(result) + f" {threads} thread{'s' if threads != '1' else ''}.", "",
            *_markdown(["workload", "reference ops", "fastgen", "speedup"], out, "lrrr")]


WAVENET_PATHS = ("naive", "reference", "cpu", "cpu bf16")


def _wavenet_model_label(name: str, weights_mb: str, first: bool) -> str:
    m = re.fullmatch(r"R(\d+) S(\d+) L(\d+)", name)
    if m is None:
        raise ValueError(f"wavenet.md: unexpected model name {name!r}")
    label = f"R={m.group(1)}, S={m.group(2)}, {m.group(3)} layers"
    return f"{label} ({weights_mb} MB)" if first else label


def wavenet_table(result: ResultFile) -> list[str]:
    table = result.tables[0]
    if table.columns[:4] != ["model", "batch", "threads", "path"]:
        raise ValueError(f"wavenet.md: the first table's columns are {table.columns[:4]}, not model/batch/threads/path")
    groups: dict[tuple[str, str, str], dict[str, dict[str, str]]] = {}
    for r in table.rows:
        groups.setdefault((r["model"], r["batch"], r["threads"]), {})[r["path"]] = r
    out, seen = [], set()
    for (model, batch, threads), paths in groups.items():
        cpu = paths["cpu"]
        rate = cpu["real time ×"] + ("" if batch == "1" else " per row")
        out.append([_wavenet_model_label(model, cpu["weights MB/step"], model not in seen), f"{batch}, {threads}",
                    paths.get("naive", {}).get("samples/s", ""), paths["reference"]["samples/s"],
                    cpu["samples/s"], rate, cpu["% of floor"], paths.get("cpu bf16", {}).get("samples/s", "")])
        seen.add(model)
    return [_provenance(result), "",
            *_markdown(["model (float32)", "batch, threads", "naive", "reference queues", "fastgen cpu",
                        "× real time", "% of floor", "bfloat16 weights"], out, "llrrrrrr")]


MASKED_CONV_COLUMNS = ["shape", "workload", "threads", "onednn ms", "compile ms", "fastgen-cpu ms", "vs onednn",
                       "vs compile", "% of floor"]


MASKED_CONV_SECTION = "Median ms per call, thread CPU time, 1 thread"


def masked_conv_table(result: ResultFile) -> list[str]:
    """Per layer shape and workload, one thread (CPU time: the result files come from a shared machine):
    ms for oneDNN, torch.compile and the kernel."""
    table = result.table(MASKED_CONV_SECTION)
    if table.columns != MASKED_CONV_COLUMNS:
        raise ValueError(f"{result.name}: the first table's columns are {table.columns}, not {MASKED_CONV_COLUMNS}")
    rows = [[r["shape"], r["workload"], r["threads"], r["onednn ms"], r["compile ms"], r["fastgen-cpu ms"],
             r["vs onednn"].replace("x", "×"), r["vs compile"].replace("x", "×"), r["% of floor"]]
            for r in table.rows]
    return [_provenance(result) + f" {MASKED_CONV_SECTION}; floor: float32 matmul; FLOPs of the live weights only.",
            "",
            *_markdown(["layer", "workload", "threads", "oneDNN ms", "torch.compile ms", "fastgen cpu ms",
                        "vs oneDNN", "vs compile", "% of floor"], rows, "lllrrrrrr")]


GENERATORS: dict[str, tuple[str, Callable[[ResultFile], list[str]]]] = {
    "attention": ("attention.md", attention_table),
    "draw": ("draw.md", draw_table),
    "wavenet": ("wavenet.md", wavenet_table),
    "masked_conv": ("masked_conv_xeon_2026-12-03.md", masked_conv_table),
}


def render(name: str, folder: Path = RESULTS) -> str:
    file_name, generate = GENERATORS[name]
    return "\n".join(generate(read_results(file_name, folder)))


def _block(name: str) -> re.Pattern:
    return re.compile(rf"(<!-- results:{name} -->\n)(.*?)(<!-- /results:{name} -->)", re.S)


def refresh(readme: str, folder: Path = RESULTS) -> tuple[str, list[str]]:
    """The README with every marked block regenerated, and the names of the blocks that changed."""
    changed = []
    for name in GENERATORS:
        pattern = _block(name)
        if len(pattern.findall(readme)) != 1:
            raise ValueError(f"README.md: expected one '<!-- results:{name} -->' ... '<!-- /results:{name} -->' block")
        body = render(name, folder) + "\n"
        if pattern.search(readme).group(2) != body:
            changed.append(name)
        readme = pattern.sub(lambda m: m.group(1) + body + m.group(3), readme)
    return readme, changed


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fastgen.benchmarking.readme_tables", description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="only report blocks that disagree with the results")
    args = parser.parse_args(argv)
    text = README.read_text(encoding="utf-8")
    new, changed = refresh(text)
    if args.check:
        for name in changed:
            print(f"README.md: the '{name}' table differs from benchmarks/results/{GENERATORS[name][0]}", file=sys.stderr)
        return 1 if changed else 0
    README.write_text(new, encoding="utf-8")
    print(f"README.md: regenerated {', '.join(changed) or 'nothing (already current)'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
