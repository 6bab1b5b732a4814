"""``nmc-workbook sxdm-curvature``: radius of curvature from one or more reduced SXDM maps files.

Each input is a results file written by ``nmc-workbook sxdm-maps`` (:func:`helpers.sxdm.maps.write_maps`).
Prints one line per particle (size, total curvature, R ± σ, flags) and, with three or more usable
particles, the ensemble R from a line fit of total curvature vs size (through the origin and with an
intercept) with a bootstrap interval. ``--out results.json`` also writes everything, with units,
parameters and the checksum of every input (atomically: a temporary name renamed when complete).

Exit codes: 0 all done (also when fewer than three particles are usable: no ensemble fit is
attempted, which is said); 2 bad input or options, nothing written; 3 partial success: every
per-particle radius was measured, printed and written, but an ensemble fit could not be made (its
reason is printed and stored under ``ensemble.<fit>.error``).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
from pathlib import Path

import numpy as np

from helpers import cli_checks as checks
from helpers.sxdm import curvature as cv


def add_arguments(parser: argparse.ArgumentParser, name: str = "sxdm-curvature") -> None:
    """Arguments of the sub-command ``name``."""
    parser.add_argument("maps_files", nargs="+", type=Path, help="reduced SXDM maps file(s) (HDF5)")
    parser.add_argument("--out", type=Path, default=None, help="write the results as JSON to this file")
    parser.add_argument(
        "--mask-threshold",
        type=float,
        default=None,
        help="re-threshold the mask at this fraction of the maximum intensity",
    )
    parser.add_argument(
        "--significance",
        type=float,
        default=4.0,
        help="κ must exceed this many σ to count as measurable curvature (default 4)",
    )
    parser.add_argument(
        "--max-flagged-fraction",
        type=float,
        default=0.1,
        help="exclude a particle when more of its points carry a truncation/split flag",
    )
    parser.add_argument(
        "--tilt-jump",
        type=float,
        default=0.08,
        help="neighbour tilt change (deg) separating orientation domains; R is measured on the largest",
    )
    parser.add_argument("--bootstrap", type=int, default=2000, help="bootstrap resamples over particles")
    parser.add_argument("--confidence", type=float, default=0.68, help="bootstrap interval probability")
    parser.add_argument("--seed", type=int, default=0, help="seed of the bootstrap")
    parser.add_argument("--overwrite", action="store_true", help="replace --out if it exists")


def analyse_files(
    paths,
    *,
    mask_threshold=None,
    significance=4.0,
    max_flagged_fraction=0.1,
    tilt_jump_deg=0.08,
    n_bootstrap=2000,
    confidence=0.68,
    seed=0,
) -> dict:
    """Per-particle curvature and the ensemble fits of a list of maps files (a JSON-ready dict)."""
    from helpers.sxdm.maps import apply_mask_threshold, file_sha256, read_maps

    particles = []
    for path in paths:
        path = Path(path)
        maps = read_maps(path)
        if mask_threshold is not None:
            maps = apply_mask_threshold(maps, mask_threshold)
        entry = {"file": path.name, "sha256": file_sha256(path)}
        analysis = cv.analyse_particle(
            maps,
            path.name,
            tilt_jump_deg=tilt_jump_deg,
            max_flagged_fraction=max_flagged_fraction,
            significance=significance,
        )
        entry.update(
            points=analysis.n_points,
            mean_d_angstrom=analysis.mean_d_angstrom,
            microstrain=analysis.microstrain,
            domains=analysis.n_domains,
            main_domain_fraction=analysis.main_domain_fraction,
        )
        if analysis.curvature is not None:
            entry.update(
                {
                    k: (v if not isinstance(v, float) or np.isfinite(v) else str(v))
                    for k, v in vars(analysis.curvature).items()
                }
            )
        entry["excluded"] = analysis.excluded
        particles.append(entry)
    used = [p for p in particles if p.get("excluded") is None]
    out = {
        "software": "nmc-workbook sxdm-curvature",
        "created_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "units": {
            "size_um": "micrometre",
            "total_curvature_deg": "degree",
            "radius_um": "micrometre",
            "curvature_deg_per_um": "degree/micrometre",
            "mean_d_angstrom": "angstrom",
            "microstrain": "std(d)/mean(d)",
        },
        "parameters": {
            "tilt_jump_deg": tilt_jump_deg,
            "mask_threshold": mask_threshold,
            "significance": significance,
            "max_flagged_fraction": max_flagged_fraction,
            "n_bootstrap": n_bootstrap,
            "confidence": confidence,
            "seed": seed,
        },
        "particles": particles,
        "ensemble": None,
    }
    if len(used) >= 3:
        out["ensemble"] = {}
        for label, origin in (("through_origin", True), ("with_intercept", False)):
            try:
                fit = cv.ensemble_fit(
                    [p["size_um"] for p in used],
                    [p["total_curvature_deg"] for p in used],
                    through_origin=origin,
                    names=[p["file"] for p in used],
                    n_bootstrap=n_bootstrap,
                    confidence=confidence,
                    rng=np.random.default_rng(seed),
                )
            except ValueError as err:  # a failed summary keeps every per-particle result
                out["ensemble"][label] = {"error": str(err), "n_particles": len(used)}
            else:
                out["ensemble"][label] = vars(fit)
    return out


def validate(args: argparse.Namespace) -> None:
    """Options, inputs and ``--out`` checked before any file is analysed."""
    checks.within("--mask-threshold", args.mask_threshold, 0.0, 1.0, closed=False)
    checks.positive("--significance", args.significance)
    checks.within("--max-flagged-fraction", args.max_flagged_fraction, 0.0, 1.0)
    checks.positive("--tilt-jump", args.tilt_jump)
    if args.bootstrap < 0:
        raise ValueError(f"--bootstrap {args.bootstrap}: must be ≥ 0 resamples")
    checks.within("--confidence", args.confidence, 0.0, 1.0, closed=False)
    for path in args.maps_files:
        if not Path(path).is_file():
            raise OSError(f"maps file {path} does not exist")
    if args.out is not None:
        checks.check_out_path(args.out, args.maps_files, overwrite=args.overwrite)


def run(args: argparse.Namespace) -> int:
    """Run the sub-command; returns the exit code (0, or 3 when an ensemble fit failed)."""
    validate(args)
    result = analyse_files(
        args.maps_files,
        mask_threshold=args.mask_threshold,
        significance=args.significance,
        max_flagged_fraction=args.max_flagged_fraction,
        tilt_jump_deg=args.tilt_jump,
        n_bootstrap=args.bootstrap,
        confidence=args.confidence,
        seed=args.seed,
    )
    print(f"{'file':<32} {'size_um':>8} {'dphi_deg':>9} {'R_um':>10} {'sigma_um':>9}  flags / excluded")
    for p in result["particles"]:
        if "size_um" not in p:
            print(f"{p['file']:<32} {'—':>8} {'—':>9} {'—':>10} {'—':>9}  excluded: {p['excluded']}")
            continue
        note = "; ".join(p["flags"]) + (f" excluded: {p['excluded']}" if p["excluded"] else "")
        print(
            f"{p['file']:<32} {p['size_um']:8.2f} {p['total_curvature_deg']:9.3f} "
            f"{float(p['radius_um']):10.0f} {float(p['radius_sigma_um']):9.0f}  {note}"
        )
    failed = []
    if result["ensemble"] is None:
        print("ensemble fit: fewer than 3 usable particles, none made")
    else:
        for label, fit in result["ensemble"].items():
            if "error" in fit:
                failed.append(label)
                name = label.replace("_", " ")
                print(f"ensemble R ({name}): no ensemble fit could be made: {fit['error']}")
                continue
            lo, hi = fit["radius_interval_um"]
            print(
                f"ensemble R ({label.replace('_', ' ')}): "
                f"{fit['radius_um']:.0f} ± {fit['radius_sigma_um']:.0f} µm, "
                f"{100 * fit['confidence']:.0f} % bootstrap interval [{lo:.0f}, {hi:.0f}] µm, "
                f"{fit['n_particles']} particles"
            )
    if args.out is not None:
        with checks.atomic_output(args.out) as tmp:
            tmp.write_text(json.dumps(result, indent=1, default=str))
        print(f"results written to {args.out}")
    if failed:
        print(f"partial success (exit {checks.EXIT_PARTIAL}): every per-particle radius above is measured; "
              f"no ensemble fit could be made ({', '.join(failed)})")
        return checks.EXIT_PARTIAL
    return 0
