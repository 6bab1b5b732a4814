"""Coverage of the coupling's 95 % interval, raw and corrected for the CT's void-volume recovery.

Full chain of notebook 09 on several seeds of the coupled correlative particle (design κ = 2e-3) and
on the control (coupling off): SXDM frames → ``reduce``; CT projections → ``ct-reconstruct`` →
``ct-analyse``; rigid registration; block association. The correction is truth-free: the CT's void
detection curve measured on calibration phantoms (seeds 1000–1005, never analysed here) folded with
the void table the CT measured on each particle (``helpers.correlate.estimate_recovery``). The
particle's truth is used only to score: its actual recovery (found void voxels within 2 voxels of a
true void / true void voxels) and whether the interval holds the design κ.

Run: ``PYTHONPATH=$PWD python benchmarks/bench_correlative_coverage.py [--seeds 0 1 2 3 4]``; writes
``benchmarks/RESULTS_correlative_coverage.md`` and ``benchmarks/out/correlative_coverage.json``
(≈ 1 min per seed on two cores, plus ≈ 1.5 min for the calibration the first time).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from helpers import cli_correlate
from helpers import correlate as cr
from helpers import void_recovery as vr
from helpers.paths import cache_dir
from helpers.sxdm.io import open_sxdm_series
from helpers.sxdm.reduce import reduce
from helpers.synthetic import correlative as co
from helpers.synthetic import correlative_calibration as cc

ROUGH = cr.Alignment(30.0, (1.5, -0.4))  # notebook 09's rough start
OUT = Path(__file__).with_name("RESULTS_correlative_coverage.md")


def run_seed(seed: int, coupled: bool, calibration) -> dict:
    """One particle through the full chain; raw and corrected coupling, scored against its truth."""
    sample = co.cached_sample(coupled=coupled, seed=seed)
    work = cache_dir() / "correlative" / "bench_work"
    work.mkdir(parents=True, exist_ok=True)
    maps = reduce(open_sxdm_series(sample["sxdm"]), method="com", progress=False)
    analysis, recon = cli_correlate.run_ct_chain(sample["ct"], work, f"{'c' if coupled else 'n'}{seed}", 79.5)
    labels, grey, thr, vox = cr.read_ct_analysis(analysis, recon, "/volume_8bit")
    ct = cr.ct_projection(labels, grey, thr, vox)
    reg = cr.register(maps, ct, ROUGH, footprint_fwhm_um=0.1)
    assoc = cr.association(maps, ct, reg.alignment, "d", block_um=0.3)
    particle_mask, found, _ = cr.found_void_mask(labels, grey, thr)
    cnr = vr.volume_cnr(grey, particle_mask, thr)
    est = vr.estimate_recovery(calibration, found, vox, cnr)
    corr = vr.correct_coupling(assoc, est)
    # scoring only: the particle's truth
    particle = co.make_particle(co.CorrelativeDesign(coupled=coupled), seed)
    envelope, true_void = co.ct_truth_masks(particle)
    rec = vr.void_detection_record(found, true_void, vox)
    slope = vr.block_transfer_slope(particle_mask, found, envelope, true_void, vox)
    # the coupling a perfect CT would give: the true envelope and voids, the true alignment
    oracle = cr.association(maps, cr.CtProjection(envelope.sum(0) * vox, true_void.sum(0) * vox, vox, 1, 0),
                            cr.Alignment(**particle.alignment()), "d", block_um=0.3)
    truth = co.read_truth(sample["truth"])
    mean_ratio = float((ct.void_um.sum() / ct.envelope_um.sum()) / truth["info"]["void_fraction"])
    return {
        "seed": seed, "coupled": coupled, "ncc": reg.ncc, "verdict": assoc.verdict, "r": assoc.r,
        "p": assoc.p_value, "k_raw": assoc.coupling, "ci_raw": assoc.coupling_ci, "cnr": cnr,
        "R_pred": est.recovery, "R_sigma": est.sigma,
        "R_true": float(rec["true_found_vox"].sum() / rec["true_vox"].sum()),
        "R_mean_ratio": mean_ratio, "block_slope": slope,
        "k_corr": corr.coupling, "ci_corr": corr.coupling_ci, "k_oracle": oracle.coupling,
        "design": truth["design"]["coupling"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=list(range(10)))
    args = parser.parse_args()
    t0 = time.perf_counter()
    cal = cc.cached_calibration()
    t_cal = time.perf_counter() - t0
    loo = cal.leave_one_out()
    rows = []
    for seed in args.seeds:
        rows.append(run_seed(seed, True, cal))
        print(json.dumps(rows[-1], default=float), flush=True)
    control = run_seed(0, False, cal)
    print(json.dumps(control, default=float), flush=True)
    elapsed = time.perf_counter() - t0

    design = rows[0]["design"]
    inside_raw = [r["ci_raw"][0] <= design <= r["ci_raw"][1] for r in rows]
    inside_corr = [r["ci_corr"][0] <= design <= r["ci_corr"][1] for r in rows]
    k_raw = np.array([r["k_raw"] for r in rows])
    k_corr = np.array([r["k_corr"] for r in rows])
    curves = cal.curves()
    bias_raw, bias_corr = k_raw.mean() / design - 1, k_corr.mean() / design - 1
    se_raw = k_raw.std(ddof=1) / np.sqrt(k_raw.size) / design
    se_corr = k_corr.std(ddof=1) / np.sqrt(k_corr.size) / design
    miss = np.array([r["R_pred"] - r["R_true"] for r in rows])
    fresh = [i for i, r in enumerate(rows) if r["seed"] >= 5]
    n_fresh = len(fresh)
    fresh_raw, fresh_corr = sum(inside_raw[i] for i in fresh), sum(inside_corr[i] for i in fresh)
    lines = [
        "# Coupling coverage, raw vs corrected for the CT's void-volume recovery",
        "",
        "`benchmarks/bench_correlative_coverage.py`: full chain of notebook 09 (SXDM frames → `reduce`; CT",
        "projections → `ct-reconstruct` → `ct-analyse`; registration; 0.3 µm blocks) on the coupled",
        f"correlative particle, seeds {args.seeds}, design κ = {design:.1e} (design input), and the control",
        "(coupling off, seed 0). Correction: the CT's void detection curve on calibration phantoms",
        f"(seeds {cal.info['seeds'][0]}–{cal.info['seeds'][-1]}, voids 0.06–0.28 µm, same forward model,",
        "dose and chain) folded with the void table the CT measured on each particle; its uncertainty is",
        "the leave-one-out error over the phantoms, added in quadrature to the bootstrap interval. The",
        "particle's truth only scores the result.",
        "",
        f"Calibration: {len(cal.records)} phantoms, "
        f"contrast-to-noise {cal.cnr.min():.2f}–{cal.cnr.max():.2f}, "
        f"leave-one-out error of the fold: rms {np.sqrt(np.mean(loo**2)):.3f}, "
        f"mean {np.mean(loo):+.3f}.",
        "",
        "| true diameter bin (µm) | " + " | ".join(
            f"{lo:.3f}–{hi:.3f}" if np.isfinite(hi) else f"≥ {lo:.2f}"
            for lo, hi in zip(cal.bins_um[:-1], cal.bins_um[1:], strict=True)) + " |",
        "|---" * (len(cal.bins_um)) + "|",
        "| detection (volume recovered) | " + " | ".join(f"{v:.2f}" for v in curves["recovery"]) + " |",
        "",
        "| seed | CNR | NCC | R actual (truth) | R predicted ± σ | block slope (truth) | κ raw [95 %] | "
        "holds design | κ corrected [95 %] | holds design | κ perfect CT (truth) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r, a, b in zip(rows, inside_raw, inside_corr, strict=True):
        lines.append(
            f"| {r['seed']} | {r['cnr']:.2f} | {r['ncc']:.3f} | {r['R_true']:.3f} | {r['R_pred']:.3f} ± "
            f"{r['R_sigma']:.3f} | {r['block_slope']:.3f} | "
            f"{r['k_raw']:.2e} [{r['ci_raw'][0]:.2e}, {r['ci_raw'][1]:.2e}] | "
            f"{'yes' if a else 'no'} | {r['k_corr']:.2e} [{r['ci_corr'][0]:.2e}, {r['ci_corr'][1]:.2e}] | "
            f"{'yes' if b else 'no'} | {r['k_oracle']:.2e} |"
        )
    lines += [
        "",
        f"- Coverage of the design κ: raw {sum(inside_raw)}/{len(rows)}, "
        f"corrected {sum(inside_corr)}/{len(rows)}.",
        "- Seeds 0–4 were examined while the method was built (the envelope closing of "
        "`correlate.found_void_mask` was added after seed 3 lost a void cluster opened to the surface);",
        f"  seeds 5–9 were run only with the method fixed: raw {fresh_raw}/{n_fresh}, "
        f"corrected {fresh_corr}/{n_fresh}.",
        f"- Bias (mean κ / design − 1 over the seeds, ± standard error): raw {bias_raw:+.3f} ± {se_raw:.3f}, "
        f"corrected {bias_corr:+.3f} ± {se_corr:.3f}; median κ / design: "
        f"raw {np.median(k_raw) / design:.3f}, corrected {np.median(k_corr) / design:.3f}.",
        f"- Recovery predicted − actual (truth): mean {np.mean(miss):+.3f}, "
        f"rms {np.sqrt(np.mean(miss**2)):.3f}.",
        "- Block slope: least-squares slope of the CT-measured on the true projected void fraction over the "
        "association's blocks (the factor the coupling is actually divided by; truth, for diagnosis only).",
        "- κ perfect CT: the same association with the true envelope and voids at the true alignment — what",
        "  the corrected κ aims at (its scatter around the design is the estimator's, not the CT's).",
        f"- Control (coupling off, seed 0): r = {control['r']:+.2f}, p = {control['p']:.3f} -> "
        f"{control['verdict']} (the correction rescales κ only; the verdict is r's permutation test).",
        f"- Wall time {elapsed:.0f} s on this machine (calibration {t_cal:.0f} s of it; "
        "simulated samples and calibration cached after the first run).",
    ]
    OUT.write_text("\n".join(lines) + "\n")
    out_dir = Path(__file__).resolve().parent / "out"
    out_dir.mkdir(exist_ok=True)
    record = {"seeds": rows, "control": control, "calibration_loo": loo.tolist(), "wall_s": elapsed}
    (out_dir / "correlative_coverage.json").write_text(json.dumps(record, default=float, indent=1))
    print(OUT.read_text())


if __name__ == "__main__":
    main()
