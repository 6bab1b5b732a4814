"""Every committed notebook follows the workbook skeleton and was executed by `make reproduce`."""

import json
import os
import re
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]-*.ipynb"))
# a cell that shows a live widget: ipywidgets.interactive, an Explore panel, a 3-D view
WIDGET_CALL = re.compile(r"interactive\(|panel\.show\(\)|population_view\(|particle_voids_view\(")
SKELETON = ["Question", "Setup", "Data", "Figure", "Explore", "Summary", "References"]


def _load(path):
    return json.loads(path.read_text())


def _headings(nb):
    found = []
    for cell in nb["cells"]:
        if cell["cell_type"] == "markdown":
            found += re.findall(r"^##\s+(.+?)\s*$", "".join(cell["source"]), flags=re.M)
    return found


def test_there_are_notebooks_and_they_are_numbered_uniquely():
    assert NOTEBOOKS, "no notebooks/NN-*.ipynb found"
    numbers = [p.name[:2] for p in NOTEBOOKS]
    assert len(numbers) == len(set(numbers)), f"duplicate notebook numbers: {numbers}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_has_the_skeleton_headings_in_order(path):
    nb = _load(path)
    first = "".join(nb["cells"][0]["source"])
    assert nb["cells"][0]["cell_type"] == "markdown" and first.startswith("# "), "needs a # title"
    headings = _headings(nb)
    positions = []
    for name in SKELETON:
        hits = [i for i, h in enumerate(headings) if h.split(":")[0].strip() == name]
        assert hits, f"{path.name}: missing the '## {name}' section"
        positions.append(hits[0])
    assert positions == sorted(positions), f"{path.name}: skeleton sections out of order"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_was_executed_in_order_by_the_python3_kernel(path):
    nb = _load(path)
    assert nb["metadata"]["kernelspec"]["name"] == "python3"
    counts = [c.get("execution_count") for c in nb["cells"] if c["cell_type"] == "code"]
    assert counts and None not in counts, f"{path.name}: code cell without execution count"
    assert counts == list(range(1, len(counts) + 1)), f"{path.name}: run out of order: {counts}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_outputs_have_no_errors_and_no_absolute_paths(path):
    nb = _load(path)
    forbidden = {str(ROOT), os.path.expanduser("~"), tempfile.gettempdir(), "/home/", "/Users/"}
    forbidden = {f.rstrip("/") + "/" for f in forbidden if len(f) > 1}
    for index, cell in enumerate(nb["cells"]):
        if cell["cell_type"] != "code":
            continue
        text = json.dumps(cell.get("outputs", []))
        assert '"output_type": "error"' not in text, f"{path.name} cell {index}: stored error"
        for root in forbidden:
            assert root not in text, f"{path.name} cell {index}: absolute path {root!r} in output"
        assert "<matplotlib" not in text or "0x" not in text, f"{path.name} cell {index}: repr"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_has_a_parameters_cell_and_a_tagged_widget_cell(path):
    nb = _load(path)
    tags = [set(c.get("metadata", {}).get("tags", [])) for c in nb["cells"]]
    assert any("parameters" in t for t in tags), f"{path.name}: no cell tagged 'parameters'"
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    widget_cells = [i for i, c in enumerate(code) if WIDGET_CALL.search("".join(c["source"]))]
    assert widget_cells, f"{path.name}: no Explore widget"
    for i in widget_cells:
        assert "nbval-ignore-output" in code[i].get("metadata", {}).get("tags", []), (
            f"{path.name}: a widget cell must be tagged nbval-ignore-output"
        )
        static = code[i + 1] if i + 1 < len(code) else {"outputs": []}
        images = [o for o in static.get("outputs", []) if "image/png" in o.get("data", {})]
        assert images, f"{path.name}: the widget in code cell {i + 1} needs a stored static figure below it"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_matches_its_jupytext_source(path):
    """The executed .ipynb was built from the current .py source (edit the .py, then reproduce)."""
    from helpers.notebook_runner import notebook_source, read_notebook

    if notebook_source(path) is None:
        pytest.skip("no paired .py source")
    source_cells = [(c.cell_type, c.source.strip()) for c in read_notebook(path).cells]
    stored_cells = [(c["cell_type"], "".join(c["source"]).strip()) for c in _load(path)["cells"]]
    assert source_cells == stored_cells, (
        f"{path.name} differs from {path.with_suffix('.py').name}: run `make reproduce` "
        f"(or `nmc-workbook reproduce {path.name[:2]}`) after editing the source"
    )
