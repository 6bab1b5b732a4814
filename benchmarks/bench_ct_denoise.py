"""Denoising before segmentation at the paper's CNR 2.3: TV vs NLM vs median, against phantom truth.

For two 128³ powder phantoms (``helpers.synthetic.ct_phantom``: the default one, volume-weighted d50
of the drawn particles 28 voxels, and one asked for d50 1.2 µm that draws 36 voxels, closer to the
paper's 76), rendered at CNR 12 (reference, no denoising) and at the paper's CNR 2.3, each filter of
``helpers.nanoct.denoise`` runs at its default strength; then the three-phase fit, and the segmentation
at the fitted threshold (glue/NMC crossing and mid-grey rules) and at the best global threshold the
truth allows. Reported: Ashman's D, matched particles at IoU ≥ 0.8, over/under-segmentation, NMC
volume error, void fraction inside found particles (vs truth), and the filter's time.

Usage: ``python benchmarks/bench_ct_denoise.py``; writes ``benchmarks/out/ct_denoise.json`` and
``benchmarks/RESULTS_ct_denoise.md``. The 2-core machine is shared: times are indicative, their ratios
(one process, back to back) are the meaningful numbers.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from helpers.nanoct import segment as seg
from helpers.nanoct.denoise import DEFAULT_STRENGTH, denoise_volume
from helpers.synthetic import ct_phantom

OUT = Path(__file__).resolve().parent / "out"
RESULTS = Path(__file__).resolve().parent / "RESULTS_ct_denoise.md"


def scores(volume, threshold, void_threshold, truth, nmc_true):
    result = seg.segment_particles(volume, threshold=threshold)
    report = seg.match_labels(result.labels, truth, iou_min=0.8)
    inside = result.labels > 0
    return {
        "threshold": round(float(threshold), 2),
        "matched": round(report.matched_fraction, 3),
        "over": round(report.over_rate, 3), "under": round(report.under_rate, 3),
        "nmc_volume_error": round(float(np.count_nonzero(volume > threshold) / nmc_true.sum() - 1), 4),
        "void_fraction": round(float(np.count_nonzero(inside & (volume <= void_threshold)) / inside.sum()),
                               4),
    }


def main() -> None:
    rows = []
    for case, d50 in (("default, d50 28 vox", None), ("d50_volume_um 1.2, d50 36 vox", 1.2)):
        phantom = ct_phantom.make_powder_phantom((128, 128, 128), rng=0, d50_volume_um=d50)
        truth = phantom.filled_labels()
        nmc_true = phantom.phase == ct_phantom.NMC
        filled = truth > 0
        void_true = float(np.count_nonzero(filled & ~nmc_true) / filled.sum())
        for cnr, method in ((12.0, None), (2.3, None), (2.3, "tv"), (2.3, "nlm"), (2.3, "median")):
            raw = ct_phantom.phantom_to_grey_8bit(phantom, rng=1, cnr=cnr, blur_sigma_vox=0.5).volume_8bit
            t0 = time.perf_counter()
            volume = raw if method is None else denoise_volume(raw, method)
            row = {"case": case, "n_particles": int(truth.max()), "void_fraction_true": round(void_true, 4),
                   "cnr": cnr, "method": method or "none",
                   "strength": None if method is None else DEFAULT_STRENGTH[method],
                   "filter_s": round(time.perf_counter() - t0, 2)}
            thresholds, iou = seg.mask_iou_by_threshold(volume, nmc_true)
            best = int(thresholds[np.argmax(iou)])
            row["best_threshold"], row["best_mask_iou"] = best, round(float(iou.max()), 3)
            try:
                fit = seg.fit_three_phases(volume)
            except ValueError as err:
                row["fit"] = "refused: " + str(err).split(" with means")[0]
                rows.append(row)
                print(row, flush=True)
                continue
            row["fit"] = "ok"
            row["D"] = [round(float(d), 2) for d in fit.separations]
            row["crossing"] = scores(volume, fit.threshold_nmc, fit.void_threshold, truth, nmc_true)
            row["midpoint"] = scores(volume, fit.threshold_nmc_midpoint, fit.void_threshold, truth, nmc_true)
            row["midpoint_voids_at_nmc_threshold"] = scores(volume, fit.threshold_nmc_midpoint,
                                                            fit.threshold_nmc_midpoint, truth, nmc_true)
            row["best"] = scores(volume, best, fit.void_threshold, truth, nmc_true)
            rows.append(row)
            print(row, flush=True)
    OUT.mkdir(exist_ok=True)
    (OUT / "ct_denoise.json").write_text(json.dumps(rows, indent=1))
    lines = ["# Denoising before segmentation at the paper's CNR 2.3", "",
             "`python benchmarks/bench_ct_denoise.py` (128³ phantoms, seed 0/1; 2-core shared machine, "
             "times indicative). Matched = true particles found at IoU ≥ 0.8; NMC vol. = error of the "
             "NMC voxel count; voids = void fraction inside found particles (grey ≤ air/NMC mid-grey; "
             "in brackets ≤ the NMC threshold) vs truth.", "",
             "| phantom | CNR | filter | time s | fit D | rule | threshold | matched | over / under "
             "| NMC vol. | voids found (≤ T_NMC) / true |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        head = f"| {r['case']} ({r['n_particles']}) | {r['cnr']:g} | {r['method']} | {r['filter_s']:.1f} "
        if r["fit"] != "ok":
            lines.append(head + f"| {r['fit']} | best | {r['best_threshold']} | – | – | mask IoU "
                         f"{r['best_mask_iou']:.3f} | – |")
            continue
        for rule in ("crossing", "midpoint", "best"):
            s = r[rule]
            extra = ""
            if rule == "midpoint":
                extra = f" ({r['midpoint_voids_at_nmc_threshold']['void_fraction']:.3f})"
            lines.append(head + f"| {r['D'][0]:.2f}, {r['D'][1]:.2f} | {rule} | {s['threshold']:.1f} | "
                         f"{s['matched']:.0%} | {s['over']:.0%} / {s['under']:.0%} | "
                         f"{s['nmc_volume_error']:+.1%} | {s['void_fraction']:.3f}{extra} / "
                         f"{r['void_fraction_true']:.3f} |")
    RESULTS.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
