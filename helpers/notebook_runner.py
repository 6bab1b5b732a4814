"""Execute the workbook's notebooks in order, in place, so that their stored outputs are the test.

Stored outputs come only from here (``make reproduce``): every code cell executed once, in order,
with execution counts, by the ``python3`` kernel of the current environment.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from helpers.paths import figures_dir, repo_root

KERNEL_NAME = "python3"
#: seconds one cell may run before the notebook is retried (no workbook cell needs a minute)
CELL_TIMEOUT_S = 300
#: fresh-kernel attempts per notebook: a lost kernel message (nbclient#312) must not hang a whole run
ATTEMPTS = 2


def notebook_paths(folder: Path | None = None, selection: list[str] | None = None) -> list[Path]:
    """The ``NN-*.ipynb`` notebooks of ``folder`` in run order, optionally filtered by name parts."""
    folder = folder or repo_root() / "notebooks"
    names = {p.stem for p in folder.glob("[0-9][0-9]-*.ipynb")} | {
        p.stem for p in folder.glob("[0-9][0-9]-*.py")
    }
    paths = sorted(folder / f"{name}.ipynb" for name in names)
    if selection:
        paths = [p for p in paths if any(s in p.name for s in selection)]
        if not paths:
            raise ValueError(f"no notebook in {folder} matches {selection}")
    return paths


def notebook_source(path: Path) -> Path | None:
    """The paired jupytext source ``NN-name.py`` (py:percent) of ``NN-name.ipynb``, if there is one."""
    source = path.with_suffix(".py")
    return source if source.exists() else None


def read_notebook(path: Path):
    """The notebook to execute: built from its ``.py`` source when one exists, else the ``.ipynb``."""
    import nbformat

    source = notebook_source(path)
    if source is None:
        return nbformat.read(path, as_version=4)
    import jupytext

    return jupytext.read(source, fmt="py:percent")


def execute_notebook(path: Path, timeout_s: int = CELL_TIMEOUT_S) -> float:
    """Execute one notebook in place with a fresh ``python3`` kernel; returns the wall time (s).

    The cells come from the paired ``.py`` source (the file people edit) when there is one; the
    executed ``.ipynb`` (the file nbval compares) is written next to it.
    """
    import nbformat
    from nbclient import NotebookClient

    nb = read_notebook(path)
    nb.metadata.pop("jupytext", None)
    for index, cell in enumerate(nb.cells):
        cell.id = f"cell-{index:03d}"  # stable ids: a re-run changes only what the cells print
    nb.metadata["kernelspec"] = {
        "name": KERNEL_NAME,
        "display_name": "Python 3",
        "language": "python",
    }
    client = NotebookClient(
        nb,
        timeout=timeout_s,
        kernel_name=KERNEL_NAME,
        resources={"metadata": {"path": str(path.parent)}},
        record_timing=False,
    )
    start = time.perf_counter()
    client.execute()
    nb.metadata.pop("widgets", None)  # live widget state is meaningless in a stored notebook
    for cell in nb.cells:
        cell.metadata.pop("execution", None)
    nbformat.write(nb, path)
    return time.perf_counter() - start


def reproduce(selection: list[str] | None = None) -> None:
    """Execute every notebook (or those matching ``selection``) and report where figures went."""
    figures = figures_dir()  # fail early, before any kernel starts, if it is not writable
    os.environ.setdefault("NMC_FIGURES_DIR", str(figures))
    paths = notebook_paths(selection=selection)
    total = 0.0
    for path in paths:
        print(f"executing {path.name} ...", flush=True)
        wall_s = _execute_with_retry(path)
        total += wall_s
        print(f"  done in {wall_s:.1f} s", flush=True)
    n_figures = len(list(figures.glob("*.png")))
    print(f"{len(paths)} notebook(s) executed in {total:.1f} s; {n_figures} figure(s) in {figures}")


def _execute_with_retry(path: Path) -> float:
    """:func:`execute_notebook`, repeated with a fresh kernel if a cell times out or the kernel dies."""
    from nbclient.exceptions import CellTimeoutError, DeadKernelError

    for _ in range(ATTEMPTS - 1):
        try:
            return execute_notebook(path)
        except (CellTimeoutError, DeadKernelError) as err:
            print(f"  {type(err).__name__}; retrying {path.name} with a fresh kernel", flush=True)
    try:
        return execute_notebook(path)
    except (CellTimeoutError, DeadKernelError) as err:
        raise RuntimeError(
            f"{path.name}: a cell ran longer than {CELL_TIMEOUT_S} s (or the kernel died) "
            f"{ATTEMPTS} times; the stored notebook is unchanged"
        ) from err
