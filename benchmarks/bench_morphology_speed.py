"""Morphology speed before/after the profiling fixes of issue 18, side by side in one run, per particle size.

Profiling (pyinstrument) of :func:`helpers.nanoct.morphology.measure_particle` on rounded cubes showed two
costs growing with the particle: the inertia covariance built from an N × 3 coordinate list
(``np.argwhere``, 24 B per voxel: 300 MB and, under memory pressure, 23 of 41 s for a 12-million-voxel
particle) and the 9 full-box Gaussian derivative filters of the roundness curvature (27 1-D passes).
The fixes: the covariance from the mask's 2-D projections, and the derivatives from 18 shared 1-D passes
(bit-identical). The "before" code is kept below verbatim and swapped in for the comparison.

Particles: voxelised rounded cubes of half-side h and edge radius ρ = 0.4 h (R = 0.4 exactly), each size
timed before then after, alternating, best of ``--repeat``. Writes ``benchmarks/out/morphology_speed.json``
and ``benchmarks/RESULTS_morphology_speed.md``. Usage: ``python benchmarks/bench_morphology_speed.py``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from scipy import ndimage

from helpers.nanoct import morphology, roundness

OUT = Path(__file__).resolve().parent / "out"
RESULTS = Path(__file__).resolve().parent / "RESULTS_morphology_speed.md"
COLUMNS = ("roundness", "sphericity", "wadell_sphericity", "surface_um2", "a_um", "b_um", "c_um")


def old_inertia_semi_axes(mask):
    """Before: covariance of the N × 3 coordinate list."""
    coords = np.argwhere(mask).astype(float)
    cov = np.cov(coords, rowvar=False, bias=True) if len(coords) > 1 else np.zeros((3, 3))
    eigenvalues, eigenvectors = np.linalg.eigh(cov + np.eye(3) / 12.0)
    order = np.argsort(eigenvalues)[::-1]
    return np.sqrt(5.0 * np.clip(eigenvalues[order], 0.0, None)), eigenvectors[:, order]


def old_gaussian_derivatives_at(f, sigma_vox, coords):
    """Before: each of the 9 derivatives as its own 3-pass ``gaussian_filter``."""
    for order in [(1, 0, 0), (0, 1, 0), (0, 0, 1), (2, 0, 0), (1, 1, 0), (1, 0, 1), (0, 2, 0), (0, 1, 1),
                  (0, 0, 2)]:
        yield order, ndimage.map_coordinates(ndimage.gaussian_filter(f, sigma_vox, order=order), coords,
                                             order=1)


NEW = (morphology.inertia_semi_axes, roundness._gaussian_derivatives_at)
OLD = (old_inertia_semi_axes, old_gaussian_derivatives_at)


def _use(functions):
    morphology.inertia_semi_axes, roundness._gaussian_derivatives_at = functions


def rounded_cube(h: float, rho: float) -> np.ndarray:
    n = int(2 * h + 10)
    c = (n - 1) / 2
    z, y, x = np.ogrid[:n, :n, :n]
    d = [np.clip(np.abs(a - c) - (h - rho), 0, None) for a in (z, y, x)]
    return (d[0] ** 2 + d[1] ** 2 + d[2] ** 2) <= rho**2


def _time(mask, repeat):
    best, row = np.inf, None
    for _ in range(repeat):
        t = time.perf_counter()
        row = morphology.measure_particle(mask, 0.025)
        best = min(best, time.perf_counter() - t)
    return best, row


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=[10, 20, 40, 80, 120], help="half-sides h")
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args(argv)
    rows = []
    try:
        for h in args.sizes:
            mask = rounded_cube(h, 0.4 * h)
            _use(OLD)
            t_old, r_old = _time(mask, args.repeat)
            _use(NEW)
            t_new, r_new = _time(mask, args.repeat)
            diff = max(abs(r_new[c] - r_old[c]) / max(abs(r_old[c]), 1e-12) for c in COLUMNS
                       if np.isfinite(r_old[c]))
            rows.append({"h_vox": h, "d_eq_vox": r_new["d_eq_um"] / 0.025, "voxels": int(mask.sum()),
                         "before_s": t_old, "after_s": t_new, "roundness": r_new["roundness"],
                         "max_relative_change": diff})
            print(rows[-1], flush=True)
    finally:
        _use(NEW)
    OUT.mkdir(exist_ok=True)
    (OUT / "morphology_speed.json").write_text(json.dumps(rows, indent=1))
    lines = [
        "# Morphology speed: before / after the issue-18 profiling fixes (one run, alternating)",
        "",
        "Rounded cubes, edge radius 0.4 h (exact R = 0.4), all columns of `measure_particle` (roundness "
        f"included), best of {args.repeat}; shared 2-core machine: read the ratios.",
        "",
        "| half-side h (vox) | d_eq (vox) | voxels | before (s) | after (s) | speed-up | µs/voxel after "
        "| R | max relative change of R, S, ψ, area, axes |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {r['h_vox']} | {r['d_eq_vox']:.0f} | {r['voxels']:,} | {r['before_s']:.3f} | "
                     f"{r['after_s']:.3f} | {r['before_s'] / r['after_s']:.2f}× | "
                     f"{1e6 * r['after_s'] / r['voxels']:.2f} | {r['roundness']:.3f} | "
                     f"{r['max_relative_change']:.1e} |")
    RESULTS.write_text("\n".join(lines) + "\n")
    return {"rows": rows}


if __name__ == "__main__":
    main()
