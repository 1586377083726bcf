"""The README's performance tables are generated from benchmarks/results/ and must agree with them."""
import shutil

import pytest

from fastgen.benchmarking import readme_tables as rt


def test_readme_tables_agree_with_the_result_files():
    _, changed = rt.refresh(rt.README.read_text(encoding="utf-8"))
    assert changed == [], (f"README tables {changed} differ from benchmarks/results/: "
                           "run `python -m fastgen.benchmarking.readme_tables`")


@pytest.mark.parametrize("name, file, old, new", [
    ("wavenet", "wavenet.md", "| 26,692 |", "| 26,000 |"),
    ("draw", "draw.md", "| 364.15 |", "| 300.00 |"),
    ("attention", "attention.md", "| 811.0 ±2% |", "| 700.0 ±2% |"),
])
def test_a_new_measurement_changes_the_readme(tmp_path, name, file, old, new):
    folder = tmp_path / "results"
    shutil.copytree(rt.RESULTS, folder)
    text = (folder / file).read_text(encoding="utf-8")
    if old not in text:
        pytest.skip(f"{file} was re-measured: {old!r} is gone")
    (folder / file).write_text(text.replace(old, new, 1), encoding="utf-8")
    readme, changed = rt.refresh(rt.README.read_text(encoding="utf-8"), folder)
    assert changed == [name]
    figure = new.strip("| ").split(" ")[0]
    assert figure.split(".")[0] in rt.render(name, folder)
    assert rt.refresh(readme, folder)[1] == []   # regenerating is idempotent


def test_parse_results_reads_headings_bullets_and_rows():
    text = "# T\n- Machine: m\n- Date: d\n## part\n\n| a | b |\n|---|---:|\n| 1 | 2,500 |\n| 3 | 4 |\n"
    result = rt.parse_results(text, "x.md")
    table = result.table("part")
    assert table.rows == [{"a": "1", "b": "2,500"}, {"a": "3", "b": "4"}]
    assert result.bullet("Machine") == "m"
    assert rt._number(table.rows[0]["b"]) == 2500.0


def test_errors_name_the_file_and_the_problem():
    with pytest.raises(ValueError, match=r"x\.md: a row of the table under 'part' has 3 cells, the header 2"):
        rt.parse_results("## part\n| a | b |\n|---|---|\n| 1 | 2 | 3 |\n", "x.md")
    with pytest.raises(ValueError, match=r"x\.md: no '- Machine:' line"):
        rt.parse_results("| a |\n|---|\n| 1 |\n", "x.md").bullet("Machine")
    with pytest.raises(ValueError, match="expected one '<!-- results:attention -->'"):
        rt.refresh("no markers here")
