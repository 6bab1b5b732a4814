"""Every notebook in JupyterLab in a real browser: runs without errors, its widget redraws the figure.

Run with ``make test-browser``. For each notebook: open it in JupyterLab (served from this
environment on 127.0.0.1), run all cells, fail naming the notebook and cell on an error output or a
dead kernel, move the first control of the first Explore panel and require the figure's pixels to
change, time that change, and save a screenshot of the panel (``NMC_BROWSER_SCREENSHOTS``, default
``docs/``). Timings go to ``NMC_BROWSER_REPORT`` (a JSON file) when it is set.
"""

import json
import os
import shutil
import time
from pathlib import Path

import labdriver as lab  # tests/browser/labdriver.py
import pytest

pytestmark = pytest.mark.browser
ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted(p.name for p in (ROOT / "notebooks").glob("[0-9][0-9]-*.ipynb"))
SELECTION = os.environ.get("NMC_BROWSER_NOTEBOOKS", "")
if SELECTION:
    NOTEBOOKS = [n for n in NOTEBOOKS if any(s in n for s in SELECTION.split(","))]
RESULTS: dict[str, lab.NotebookRun] = {}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """Copies of the notebooks (the browser saves its run there, never over the committed files)."""
    folder = tmp_path_factory.mktemp("lab-notebooks")
    for name in NOTEBOOKS:
        shutil.copy2(ROOT / "notebooks" / name, folder / name)
    return folder


@pytest.fixture(scope="module")
def page(workdir, tmp_path_factory):
    playwright_api = pytest.importorskip(
        "playwright.sync_api", reason="pip install playwright (no browser download)"
    )
    executable = lab.chromium_path()
    if executable is None:
        pytest.fail("no Chromium found: `apt-get install chromium` (or set NMC_CHROMIUM to its path)")
    figures = tmp_path_factory.mktemp("figures")
    started = time.perf_counter()
    with (
        lab.LabServer(workdir, env={"NMC_FIGURES_DIR": str(figures)}) as server,
        playwright_api.sync_playwright() as p,
    ):
        context = p.chromium.launch_persistent_context(  # a fresh profile (--user-data-dir) per run
            tmp_path_factory.mktemp("chromium-profile"),
            executable_path=executable,
            headless=True,
            args=lab.CHROMIUM_FLAGS,
            viewport={"width": 1500, "height": 1000},
        )
        tab = context.pages[0] if context.pages else context.new_page()
        tab.server = server
        yield tab
        context.close()
    _write_report(time.perf_counter() - started)


def _write_report(total_s):
    target = os.environ.get("NMC_BROWSER_REPORT")
    rows = {name: {k: v for k, v in vars(r).items() if k != "name"} for name, r in RESULTS.items()}
    print(f"\nbrowser test wall time {total_s:.0f} s")
    for name, row in rows.items():
        print(f"  {name}: run all {row['run_s']:.1f} s, control -> figure {row['figure_change_s']:.2f} s")
    if target:
        Path(target).write_text(json.dumps({"wall_s": total_s, "notebooks": rows}, indent=1))


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_runs_and_its_widget_redraws(page, workdir, name):
    record = RESULTS.setdefault(name, lab.NotebookRun(name))
    saved_after = time.time()
    lab.run_all_cells(page, page.server, name, record)
    if not record.problems:
        record.problems += lab.errors_in_saved_notebook(workdir / name, saved_after)
    if not record.problems:
        lab.move_first_control(page, record)
    if not record.problems:
        lab.time_3d_view(page, record)
    shots = Path(os.environ.get("NMC_BROWSER_SCREENSHOTS", ROOT / "docs"))
    if page.locator(lab.PANEL).count():
        lab.save_panel_screenshot(page, shots / f"explore_{name[:2]}.png")
    page.server.shut_down_kernels()
    if record.problems:  # what the page showed, for the failure report (not into docs/)
        failed = workdir / f"failed_{name[:2]}.png"
        page.screenshot(path=str(failed))
        record.problems.append(f"(screenshot of the page: {failed})")
    assert not record.problems, "\n".join(record.problems)


BROKEN = {
    "zz-raises.ipynb": ["x = 1", "raise RuntimeError('a cell that raises')", "y = 2"],
    "zz-dies.ipynb": ["x = 1", "import os\nos._exit(1)", "y = 2"],
    "zz-widget-raises.ipynb": [
        "%matplotlib inline\nfrom helpers.widgets import Explorer",
        "def draw(fig, n=0):\n    if n > 0:\n        raise ValueError('draw fails for n > 0')\n"
        "    fig.add_subplot().plot([0, 1])\n\npanel = Explorer(draw, n=(0, 3))\npanel.show()",
    ],
}


@pytest.fixture(scope="module")
def broken_workdir(tmp_path_factory):
    import nbformat

    folder = tmp_path_factory.mktemp("broken-notebooks")
    for name, cells in BROKEN.items():
        nb = nbformat.v4.new_notebook()
        nb.cells = [nbformat.v4.new_code_cell(c) for c in cells]
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        nbformat.write(nb, folder / name)
    return folder


@pytest.mark.skipif(SELECTION != "", reason="runs with the full notebook set only")
def test_a_raising_cell_a_dead_kernel_and_a_raising_widget_are_named(page, broken_workdir):
    """The checks above can fail: each broken notebook gives a problem naming it and its cell."""
    found = {}
    with lab.LabServer(broken_workdir) as server:  # a second server; the same browser page
        for name in BROKEN:
            record = lab.NotebookRun(name)
            saved_after = time.time()
            lab.run_all_cells(page, server, name, record)
            if not record.problems:
                record.problems += lab.errors_in_saved_notebook(broken_workdir / name, saved_after)
            if not record.problems:
                lab.move_first_control(page, record)
            found[name] = "\n".join(record.problems)
            server.shut_down_kernels()
    assert (
        "zz-raises.ipynb code cell 2" in found["zz-raises.ipynb"]
        and "a cell that raises" in found["zz-raises.ipynb"]
    )
    assert "zz-dies.ipynb" in found["zz-dies.ipynb"] and "died" in found["zz-dies.ipynb"]
    assert "draw fails for n > 0" in found["zz-widget-raises.ipynb"]
