"""Particle morphology: the workbook's particle_table side by side with porespy regionprops_3D.

Two parts, one run:

1. accuracy on voxelised exact shapes (rotated; radius / half-side 20 voxels ≈ a 1 µm particle at 25 nm):
   volume, semi-axis a, S, ψ and R of the workbook, porespy's volume, axis and ``sphericity`` (its ψ),
   against the exact 3-D values;
2. speed on the powder phantom of ``helpers.synthetic.ct_phantom`` (truth labels): wall time of
   ``particle_table`` with and without roundness against ``porespy.metrics.regionprops_3D`` (whose
   properties are lazy: the benchmark reads volume, axes and sphericity of every region), and peak
   Python memory (tracemalloc) of each.

Writes ``benchmarks/out/ct_morphology.json`` and ``benchmarks/RESULTS_ct_morphology.md``. The 2-core
machine is shared: absolute times vary, ratios from one process are what to read.
"""

from __future__ import annotations

import json
import platform
import time
import tracemalloc
import warnings
from pathlib import Path

import numpy as np

from helpers.nanoct import shapes
from helpers.nanoct.morphology import particle_table
from helpers.nanoct.roundness import wadell_roundness

HERE = Path(__file__).resolve().parent
HALF = 20.0
PAPER_VOXELS = 2560 * 2560 * 960
TILT = shapes.rotation_matrix((30.0, 20.0, 10.0))
CASES = [
    ("sphere", {"r": HALF}, shapes.sphere(HALF)),
    ("cube", {"h": HALF}, shapes.cube(HALF, TILT)),
    ("cube (axis-aligned)", {"h": HALF - 0.5}, shapes.cube(HALF - 0.5)),
    ("cylinder H = D", {"r": HALF, "h": HALF}, shapes.cylinder(HALF, HALF, TILT)),
    ("rounded cube ρ = h/2", {"h": HALF, "rho": HALF / 2}, shapes.rounded_cube(HALF, HALF / 2, TILT)),
    ("ellipsoid 30:20:12", {"a": 30.0, "b": 20.0, "c": 12.0}, shapes.ellipsoid(30.0, 20.0, 12.0, TILT)),
]
KIND = {"sphere": "sphere", "cube": "cube", "cube (axis-aligned)": "cube", "cylinder H = D": "cylinder",
        "rounded cube ρ = h/2": "rounded_cube", "ellipsoid 30:20:12": "ellipsoid"}


def _scene():
    pad = 2
    widths = [m.shape[2] for _, _, m in CASES]
    depth = max(m.shape[0] for _, _, m in CASES) + 2 * pad
    height = max(m.shape[1] for _, _, m in CASES) + 2 * pad
    volume = np.zeros((depth, height, sum(widths) + pad * (len(CASES) + 1)), dtype=np.int32)
    x = pad
    for label, (_, _, mask) in enumerate(CASES, start=1):
        volume[pad:pad + mask.shape[0], pad:pad + mask.shape[1], x:x + mask.shape[2]][mask] = label
        x += mask.shape[2] + pad
    return volume


def _porespy_props(labels):
    import porespy

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        props = porespy.metrics.regionprops_3D(labels)
        return {p.label: {"volume": float(p.volume), "a": float(p.axis_major_length) / 2,
                          "sphericity": float(p.sphericity)} for p in props}


def accuracy():
    labels = _scene()
    ours = particle_table(labels, 1.0, min_d_eq_vox=10).set_index("label")
    peer = _porespy_props(labels)
    rows = []
    for label, (name, size, _) in enumerate(CASES, start=1):
        exact = shapes.reference_values(KIND[name], **size)
        row = ours.loc[label]
        rows.append({
            "shape": name,
            "volume_err_workbook": row["volume_um3"] / exact["volume"] - 1,
            "volume_err_porespy": peer[label]["volume"] / exact["volume"] - 1,
            "a_err_workbook": row["a_um"] / exact["a"] - 1,
            "a_err_porespy": peer[label]["a"] / exact["a"] - 1,
            "S_exact": exact["sphericity"], "S_workbook": row["sphericity"],
            "psi_exact": exact["wadell_sphericity"], "psi_workbook": row["wadell_sphericity"],
            "psi_porespy": peer[label]["sphericity"],
            "R_exact": exact["roundness"], "R_workbook": row["roundness"],
        })
    return rows


def roundness_sweep():
    rows = []
    for half in (14.5, 24.5, 38.5):
        for fraction in (0.0, 0.25, 0.5, 0.75, 1.0):
            mask = (shapes.sphere(half) if fraction == 1.0
                    else shapes.rounded_cube(half, fraction * half, TILT))
            rows.append({"half_side_vox": half, "rho_over_h": fraction,
                         "R": wadell_roundness(mask).roundness})
    return rows


def enclosing_sphere(n_sets=20, n_points=2000):
    """Welzl (workbook) against trimesh.nsphere on anisotropic Gaussian clouds: radius excess and time."""
    from trimesh.nsphere import minimum_nsphere

    from helpers.nanoct.morphology import circumscribed_radius

    rng = np.random.default_rng(5)
    excess, t_ours, t_peer = [], 0.0, 0.0
    for _ in range(n_sets):
        points = rng.normal(size=(n_points, 3)) * [5.0, 2.0, 1.0]
        start = time.perf_counter()
        centre, radius = circumscribed_radius(points)
        t_ours += time.perf_counter() - start
        start = time.perf_counter()
        peer_radius = minimum_nsphere(points)[1]
        t_peer += time.perf_counter() - start
        assert np.linalg.norm(points - centre, axis=1).max() <= radius * (1 + 1e-9)
        excess.append(peer_radius / radius - 1)
    return {"n_sets": n_sets, "n_points": n_points, "trimesh_excess_median": float(np.median(excess)),
            "trimesh_excess_max": float(np.max(excess)), "workbook_ms": 1e3 * t_ours / n_sets,
            "trimesh_ms": 1e3 * t_peer / n_sets}


def _timed(function):
    tracemalloc.start()
    start = time.perf_counter()
    result = function()
    seconds = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return result, seconds, peak / 2**20


def speed(shape_vox=(160, 192, 192), d50_volume_um=1.2, seed=7):
    from helpers.synthetic.ct_phantom import make_powder_phantom

    labels = make_powder_phantom(shape_vox=shape_vox, rng=seed, d50_volume_um=d50_volume_um).labels
    table, t_full, m_full = _timed(lambda: particle_table(labels, 0.025))
    _, t_fast, m_fast = _timed(lambda: particle_table(labels, 0.025, compute_roundness=False))
    _, t_peer, m_peer = _timed(lambda: _porespy_props(labels))
    return {"shape_vox": list(shape_vox), "n_particles": int(len(table)),
            "n_above_size_cut": int((~table["too_small"]).sum()),
            "workbook_s": t_full, "workbook_no_roundness_s": t_fast, "porespy_s": t_peer,
            "workbook_peak_mib": m_full, "workbook_no_roundness_peak_mib": m_fast, "porespy_peak_mib": m_peer,
            "labels_mib": labels.nbytes / 2**20, "particle_voxels": int(np.count_nonzero(labels))}


def write_markdown(result, path):
    lines = ["# Particle morphology: workbook vs porespy `regionprops_3D`", "",
             f"One run on {result['machine']} (shared 2-core machine: read ratios, not absolute times).", "",
             "## Accuracy on voxelised exact shapes (rotated, radius / half-side 20 voxels)", "",
             "| shape | V err wb | V err porespy | a err wb | a err porespy | S exact | S wb | ψ exact "
             "| ψ wb | ψ porespy | R exact | R wb |", "|---" * 12 + "|"]
    for r in result["accuracy"]:
        lines.append(f"| {r['shape']} | {r['volume_err_workbook']:+.2%} | {r['volume_err_porespy']:+.2%} | "
                     f"{r['a_err_workbook']:+.2%} | {r['a_err_porespy']:+.2%} | {r['S_exact']:.3f} | "
                     f"{r['S_workbook']:.3f} | {r['psi_exact']:.3f} | {r['psi_workbook']:.3f} | "
                     f"{r['psi_porespy']:.3g} | {r['R_exact']:.2f} | {r['R_workbook']:.3f} |")
    lines += ["", "porespy's `sphericity` is ψ from its own surface mesh (marching cubes at level 0 on a "
              "padded plateau): for an axis-aligned cube it is far above 1 and for a sphere 0.78; the "
              "workbook does not use it (WORKBOOK §4).", "",
              "## 3-D Wadell roundness of rotated rounded cubes (R = ρ/h exactly)", "",
              "| half-side h (voxels) | ρ/h | R measured | error |", "|---|---|---|---|"]
    for r in result["roundness_sweep"]:
        lines.append(f"| {r['half_side_vox']} | {r['rho_over_h']:.2f} | {r['R']:.3f} | "
                     f"{r['R'] - r['rho_over_h']:+.3f} |")
    e = result["enclosing_sphere"]
    s = result["speed"]
    lines += ["", "ρ/h = 1 is a sphere. ρ/h = 0 (sharp) shows the resolution floor: a sharp edge is "
              "resolved as a radius of 3–5 voxels.", "",
              "## Minimum enclosing sphere (r_cir): Welzl (workbook) vs trimesh `minimum_nsphere`", "",
              f"{e['n_sets']} anisotropic Gaussian clouds of {e['n_points']} points: trimesh's radius is "
              f"{e['trimesh_excess_median']:+.1%} (median), {e['trimesh_excess_max']:+.1%} (max) above the "
              "exact ball (it only tries furthest-site Voronoi vertices, so it misses balls fixed by 2 or 3 "
              f"points); time {e['workbook_ms']:.1f} ms (workbook) vs {e['trimesh_ms']:.1f} ms (trimesh) per "
              "set. On dense meshes of convex particles the two agree to ~1e-4 voxel.", "",
              f"## Speed on the powder phantom {tuple(s['shape_vox'])}, {s['n_particles']} particles "
              f"({s['n_above_size_cut']} above the size cut)", "",
              "| run | wall time (s) | per particle (ms) | peak Python memory (MiB) |", "|---|---|---|---|"]
    for name, t, m in [("workbook particle_table (all columns)", s["workbook_s"], s["workbook_peak_mib"]),
                       ("workbook without roundness", s["workbook_no_roundness_s"],
                        s["workbook_no_roundness_peak_mib"]),
                       ("porespy regionprops_3D (volume, axes, sphericity)", s["porespy_s"],
                        s["porespy_peak_mib"])]:
        lines.append(f"| {name} | {t:.1f} | {1e3 * t / s['n_particles']:.0f} | {m:.0f} |")
    lines += ["", f"Label volume itself: {s['labels_mib']:.0f} MiB. Ratio workbook (all columns) / porespy: "
              f"{s['workbook_s'] / s['porespy_s']:.2f}; the workbook computes more (r_ins, r_cir, smoothed "
              "surface, roundness) and its memory follows the largest particle's bounding box.",
              "", "Extrapolation to the paper's volume (2560² × 960 voxels, ~3200 particles, one core): the "
              "cost of every column scales with the particle voxels (bounding-box crops, Gaussian filters, "
              "meshes), not with the particle count. At the phantom's NMC fraction, "
              f"{s['particle_voxels'] / np.prod(s['shape_vox']):.0%}, the paper's volume holds "
              f"{PAPER_VOXELS / np.prod(s['shape_vox']):.0f} × more particle voxels: "
              f"{s['workbook_s'] * PAPER_VOXELS / np.prod(s['shape_vox']) / 3600:.1f} h for all columns, "
              f"{s['workbook_no_roundness_s'] * PAPER_VOXELS / np.prod(s['shape_vox']) / 3600:.1f} h without "
              "roundness; particles are independent, so this divides by the number of cores (e.g. "
              "joblib over labels). Memory stays that of the largest particle's crop plus the label volume "
              "(memory-mapped if needed)."]
    path.write_text("\n".join(lines) + "\n")


def main():
    result = {"machine": f"{platform.machine()} {platform.python_version()}", "accuracy": accuracy(),
              "roundness_sweep": roundness_sweep(), "enclosing_sphere": enclosing_sphere(),
              "speed": speed()}
    out = HERE / "out"
    out.mkdir(exist_ok=True)
    (out / "ct_morphology.json").write_text(json.dumps(result, indent=2, default=float))
    write_markdown(result, HERE / "RESULTS_ct_morphology.md")
    print((HERE / "RESULTS_ct_morphology.md").read_text())


if __name__ == "__main__":
    main()
