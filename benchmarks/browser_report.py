"""Markdown table of a browser-test run: ``python benchmarks/browser_report.py timings.json [note]``.

The JSON is what ``make test-browser`` writes when ``NMC_BROWSER_REPORT=timings.json`` is set:
per notebook the time to run all cells in JupyterLab, the time from moving the Explore panel's first
control to a changed figure (pixels of the ipympl canvas differ), and the time from re-running the
first 3-D view cell to a drawn k3d canvas. Writes ``benchmarks/RESULTS_browser.md``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "RESULTS_browser.md"


def table(report: dict) -> str:
    rows = [
        "| notebook | run all cells (s) | control | control moved → new figure (s) | k3d population views "
        "| 3-D cell re-run → drawn (s) |",
        "|---|---:|---|---:|---:|---:|",
    ]
    for name, r in report["notebooks"].items():
        view = f"{r['view3d_s']:.2f}" if r.get("views_3d") else "—"
        rows.append(f"| {name} | {r['run_s']:.1f} | {r['control']} | {r['figure_change_s']:.2f} | "
                    f"{r.get('views_3d', 0)} | {view} |")
    return "\n".join(rows)


def main(path: str, note: str = "") -> None:
    report = json.loads(Path(path).read_text())
    text = (f"# Browser test: JupyterLab in Chromium\n\n{__doc__.split(chr(10), 2)[2].strip()}\n\n{note}\n\n"
            f"Wall time of the browser test (server start to teardown): **{report['wall_s']:.0f} s**.\n\n"
            f"{table(report)}\n")
    RESULTS.write_text(text)
    print(text)


if __name__ == "__main__":
    main(*sys.argv[1:3])
