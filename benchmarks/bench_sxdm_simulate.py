"""Benchmark of the SXDM forward model + BLISS writer: wall time, file size, peak memory.

Cases
-----
- ``sample``: the bundled Fig. 1 sample (40 × 40 points × 20 eta × 64 × 120 ROI), generated in full.
- ``large``: the Fig. 1 particle on a 40 × 40 × 40-eta × 128² case (truth not written). With
  ``--large-lines N`` < 40 only N scan lines through the particle's middle are simulated and the totals
  are extrapolated linearly to 40 lines (conservative: middle lines are the densest).

Each case runs in its own child process so that its peak resident memory (``ru_maxrss``) is its own.
Writes ``benchmarks/out/bench_sxdm_simulate.json`` and ``benchmarks/RESULTS_sxdm_simulate.md``.
Also times XSOCS ``make_xsocs_links`` on the sample (the peer that must accept the file).

Usage: ``python benchmarks/bench_sxdm_simulate.py [--large-lines 8]``
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def child(case: str, lines: int, out_json: Path) -> None:
    import numpy as np

    from helpers.synthetic import sxdm_model, sxdm_samples, sxdm_scan

    with tempfile.TemporaryDirectory(prefix="bench-sxdm-") as tmp:
        tmp = Path(tmp)
        start = time.perf_counter()
        if case == "sample":
            sxdm_samples.write_fig1_sample(tmp)
            n_lines_done, n_lines_total = 40, 40
            shape = (40, 40, 30, 64, 64)
            data_bytes = _folder_bytes(tmp / sxdm_samples.FIG1_NAME)
            truth_bytes = (tmp / f"{sxdm_samples.FIG1_NAME}_truth.h5").stat().st_size
        else:
            particle = sxdm_model.fig1_particle(np.random.default_rng(sxdm_samples.FIG1_SEED_PARTICLE))
            theta = 7.52
            settings = sxdm_scan.ScanSettings(
                n_fast=40,
                n_slow=lines,
                start_um=(0.05, 2.0 - 0.05 * lines),
                eta_deg=theta - 0.4 + 0.02 * np.arange(40),
                roi=(246, 374, 132, 260),
                drift_um_per_eta=0.0,
            )
            sim = sxdm_scan.simulate_scan(particle, settings, np.random.default_rng(1))
            sxdm_scan.write_simulation(sim, tmp / "large" / "large.h5")
            n_lines_done, n_lines_total = lines, 40
            shape = (40, 40, 40, 128, 128)
            data_bytes = _folder_bytes(tmp / "large")
            truth_bytes = 0
        wall = time.perf_counter() - start
        result = {
            "case": case,
            "shape_slow_fast_eta_rows_cols": shape,
            "lines_simulated": n_lines_done,
            "lines_total": n_lines_total,
            "wall_s_measured": wall,
            "wall_s_full": wall * n_lines_total / n_lines_done,
            "data_bytes_measured": data_bytes,
            "data_bytes_full": data_bytes * n_lines_total / n_lines_done,
            "truth_bytes": truth_bytes,
            "raw_uint32_bytes_full": int(np.prod(shape)) * 4,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        }
        if case == "sample":
            try:
                from xsocs.io.bliss import make_xsocs_links

                t0 = time.perf_counter()
                make_xsocs_links(
                    str(tmp / sxdm_samples.FIG1_NAME / f"{sxdm_samples.FIG1_NAME}.h5"), str(tmp / "x")
                )
                result["xsocs_make_links_s"] = time.perf_counter() - t0
            except ImportError:
                result["xsocs_make_links_s"] = None
    out_json.write_text(json.dumps(result, indent=2))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--large-lines", type=int, default=40)
    parser.add_argument("--child", choices=["sample", "large"])
    parser.add_argument("--out-json", type=Path)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child, args.large_lines, args.out_json)
        return 0
    out = HERE / "out"
    out.mkdir(exist_ok=True)
    results = []
    for case in ("sample", "large"):
        part = out / f"bench_sxdm_simulate_{case}.json"
        subprocess.run(
            [
                sys.executable,
                __file__,
                "--child",
                case,
                "--large-lines",
                str(args.large_lines),
                "--out-json",
                str(part),
            ],
            check=True,
        )
        results.append(json.loads(part.read_text()))
    (out / "bench_sxdm_simulate.json").write_text(json.dumps(results, indent=2))
    rows = [
        "| case | data (slow×fast×eta×rows×cols) | lines simulated | wall time, full (s) | files, full (MB) "
        "| raw uint32 (GB) | truth file (MB) | peak memory (MB) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        shape = "×".join(str(v) for v in r["shape_slow_fast_eta_rows_cols"])
        extrapolated = r["lines_simulated"] < r["lines_total"]
        rows.append(
            f"| {r['case']} | {shape} | {r['lines_simulated']}/{r['lines_total']} "
            f"| {r['wall_s_full']:.0f}{' (extrapolated)' if extrapolated else ''} "
            f"| {r['data_bytes_full'] / 1e6:.1f}{' (extrapolated)' if extrapolated else ''} "
            f"| {r['raw_uint32_bytes_full'] / 1e9:.2f} | {r['truth_bytes'] / 1e6:.2f} "
            f"| {r['peak_rss_mb']:.0f} |"
        )
    xsocs = results[0].get("xsocs_make_links_s")
    text = "\n".join(
        [
            "# SXDM forward model and BLISS writer: cost",
            "",
            "`python benchmarks/bench_sxdm_simulate.py` on the shared 2-core machine (other jobs running, so",
            "wall times are upper bounds). Each case runs in its own process; peak memory is that process's",
            "maximum resident set. Rows marked *extrapolated* simulated only the densest middle scan lines",
            "and scale linearly to 40 lines (an overestimate). Frames are uint32, gzip + shuffle, in",
            "per-scan detector files; the large case writes no truth file. BLAS runs single-threaded",
            "inside the simulator (many small products; 2-12x faster than multi-threaded on this box).",
            "",
            *rows,
            "",
            f"XSOCS `make_xsocs_links` accepts the sample file and builds its master/entry files in "
            f"{xsocs:.2f} s."
            if xsocs is not None
            else "XSOCS not installed: acceptance not timed.",
            "",
            "Memory is bounded by one scan line of uint32 frames (n_fast·n_eta·ny·nx·4 bytes) plus one point",
            "in float64 and the per-cell spot profiles; the 5-D array is never held.",
        ]
    )
    (HERE / "RESULTS_sxdm_simulate.md").write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
