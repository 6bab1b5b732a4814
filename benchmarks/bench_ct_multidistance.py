"""Round 3 of the CT chain at the paper's CNR: 1-distance Paganin vs the paper's 4-distance acquisition.

Question (physics): at the same reconstructed CNR (the paper's (m_NMC − m_air)/σ_air ≈ 2.3, measured on
NMC and air regions of the volume), does a multi-distance CTF retrieval put the noise at a finer spatial
scale than single-distance Paganin, and does that recover particle outlines and voids?

Chains (both ``ct-reconstruct``: flat/dark → retrieval δ/β 87 → ring filtering → FBP → 8-bit;
180 projections over 360°; 25 nm voxels; 29.6 keV):

- ``paganin 1-d``: one distance, z_eff = 0.1 mm (the workbook's calibrated chain; 150 counts per pixel
  and projection, a design input);
- ``ctf 4-d``: four effective distances 24.0, 25.2, 28.3, 34.6 mm (design input, ID16B-like: focus-to-
  detector ≈ 0.7 m, magnification ≈ 29 for 25 nm pixels, distance ratios spreading the CTF zeros), the
  multi-distance CTF retrieval (``--phase ctf``, distance shifts from the recorded stage positions);
  the dose per distance (counts per pixel and projection, design input) is calibrated on a seed not
  scored (21) so that the measured CNR is ≈ 2.3.

Phantoms (as ``bench_ct_particle_scale.py``): ``paper-size`` 128 × 256², d50 68 voxels; ``small`` the
bundled 128³ phantom. Noise seeds 11, 12, 13 (scored); 21 calibrates the dose and tunes the outline
refinement (never a scored seed). Noise = noisy − noise-free reconstruction (δ units).

Per seed: CNR (σ of all air), CNR of the noise averaged over d50/2 boxes, noise HWHM; σ of the mean
over balls of 50–300 nm (from the noise-only volume); masks (global threshold at the oracle threshold,
an upper bound for that filter; TV at the automatic threshold; Chan–Vese refinement of the TV mask),
particles matched at IoU ≥ 0.8 and NMC volume; voids inside the TRUE particle envelopes (so the void
step is judged apart from the outlines): the per-voxel rule (``voids_from_particle_statistics``) and the
significance test (``void_significance.voids_by_significance``, noise from the air of the same
volume), the detection curve, and the detection bound: per true void, the SNR of its mean deficit in
the noise-free reconstruction against σ of the noise averaged over a ball of its volume; expected
share detected at the test's k = 3.7: Φ(SNR − k) weighted by void volume.

Usage: ``python benchmarks/bench_ct_multidistance.py [CASE ...] [--seeds=11,12,13] [--calibrate]
[--table] [--cache=DIR]``; writes ``benchmarks/out/ct_multidistance_*.json`` and the Round 3 tables of
``RESULTS_ct_chain.md`` (between the ``multidistance`` markers). Shared 2-core machine: ≈ 40 min for
both cases (projections and reconstructions are cached under ``benchmarks/out``, or ``--cache=DIR``).

Round 4 (automatic threshold): ``--auto-threshold [--retrievals=2] [--seeds=11,12,13,14,15]
[--cache=DIR]`` reconstructs (or reads the 8-bit volumes cached in DIR), median-filters (5³, the
``ct-analyse --denoise median`` filter) and scores, per chain and seed, the global thresholds: the
best the truth allows (``oracle``), the automatic one of ``ct-analyse --denoise median``
(``nmc_threshold_auto``: glue/NMC or background/NMC mid-grey), the fitted mixture's crossing
(``threshold_crossing``), the rule before round 4 (middle component always read as glue) and
3-class multi-Otsu (scikit-image, a cross-check): threshold, mask IoU, NMC volume error, particles
≥ 0.6 µm matched at IoU ≥ 0.8 (per-cluster watershed of the mask, as ``ct-analyse``). Writes
``benchmarks/out/ct_multidistance_auto_*.json`` and the table between the ``multidistance-auto``
markers.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi
from scipy.stats import norm

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_ct_particle_scale as ps  # noqa: E402  (also caches the line integrals on disk)
from bench_ct_chain import truth_of, void_scores  # noqa: E402

from helpers.nanoct import chain  # noqa: E402
from helpers.nanoct import mask_methods as mm  # noqa: E402
from helpers.nanoct import noise as nz  # noqa: E402
from helpers.nanoct import segment as seg  # noqa: E402
from helpers.nanoct import void_significance as vs  # noqa: E402
from helpers.nanoct import voids as vd  # noqa: E402
from helpers.nanoct.denoise import denoise_volume  # noqa: E402
from helpers.synthetic import ct_phantom, ct_projections, ct_samples  # noqa: E402

OUT = ps.OUT
VOXEL_UM = 0.025
DIST4_M = (24.0e-3, 25.2e-3, 28.3e-3, 34.6e-3)
RETRIEVALS = {"paganin 1-d": ("paganin", (ct_samples.SAMPLE3D_DISTANCE_M,)), "ctf 4-d": ("ctf", DIST4_M),
              "ctf 4-d, 0.10-0.40 mm": ("ctf", ct_samples.SAMPLE_DISTANCES_M)}
#: counts per pixel per projection per distance (design inputs); ctf 4-d from --calibrate on seed 21
COUNTS = {"paganin 1-d": 150.0, "ctf 4-d": 50.0, "ctf 4-d, 0.10-0.40 mm": 300.0}
#: noise-free scans are still rounded to integer counts: record them at a dose where that is negligible
CLEAN_COUNTS = 20000.0
CAL_FILE = OUT / "ct_multidistance_calibration.json"
TARGET_CNR = 2.3
CAL_SEED = 21
SEEDS = (11, 12, 13)
BINS_NM = (50, 100, 150, 200, 300)
#: Chan–Vese refinement parameters (chosen on seed 21, see --tune)
CV_ITER, CV_SMOOTH = 15, 2


def counts_for(retrieval):
    if retrieval != "paganin 1-d" and CAL_FILE.exists():
        cal = json.loads(CAL_FILE.read_text())
        if retrieval in cal:
            return float(cal[retrieval]["counts"])
    return COUNTS[retrieval]


def setup(name):
    cfg = ps.CASES[name]
    phantom = ct_phantom.make_powder_phantom(cfg["shape"], rng=cfg["seed"], d50_volume_um=cfg["d50"],
                                             size_sigma_ln=cfg["sigma_ln"])
    t = truth_of(phantom)
    ny = cfg["shape"][1]
    disk = ct_projections.pillar_mask(ny, ny)[None]
    nmc_true = t["phase"] == ct_phantom.NMC
    return dict(
        name=name, phantom=phantom, t=t, disk=disk, nmc_true=nmc_true,
        air_roi=ndi.binary_erosion((t["phase"] == 0) & disk, iterations=2),
        nmc_roi=ndi.binary_erosion(nmc_true, iterations=2),
        d50_vox=ct_phantom.volume_weighted_median_um(phantom.truth.d_eq_um.to_numpy()) / VOXEL_UM,
        angles=np.linspace(0, 2 * np.pi, ct_samples.SAMPLE_ANGLES, endpoint=False),
    )


def reconstruct(case, retrieval, seed, counts, noise=True, center="auto"):
    phase, distances = RETRIEVALS[retrieval]
    scan = ct_projections.simulate_scan(
        case["phantom"].delta_volume(), case["phantom"].beta_volume(), case["angles"],
        distances_m=distances, rng=seed, noise=noise, flat_counts=counts,
    )
    tag = f"md_{case['name']}_{phase}_{seed}_{int(noise)}_{counts:.1f}"
    path = ct_projections.write_nxtomo(OUT / f"{tag}.h5", scan)
    cv = chain.reconstructed_volume(path, phase=phase, center=center, cache_folder=OUT / "chain_cache")
    path.unlink()  # the scan is large; the reconstruction is cached by its checksum
    return cv


def cnr_pooled(cv, case):
    v = cv.to_32bit()
    return float((v[case["nmc_roi"]].mean() - v[case["air_roi"]].mean()) / v[case["air_roi"]].std())


def calibrate(case, retrieval):
    """Counts per distance giving CNR ≈ 2.3 on seed 21: c ← c·(2.3/CNR)² (noise-limited), ≤ 4 steps."""
    clean = reconstruct(case, retrieval, CAL_SEED, CLEAN_COUNTS, noise=False)
    c, steps = COUNTS[retrieval], []
    for _ in range(4):
        cnr = cnr_pooled(reconstruct(case, retrieval, CAL_SEED, c, center=str(clean.center_px)), case)
        steps.append((c, cnr))
        print(f"calibrate {retrieval}: {c:.1f} counts per distance -> CNR {cnr:.2f}", flush=True)
        if abs(cnr - TARGET_CNR) < 0.1:
            break
        c = round(c * (TARGET_CNR / cnr) ** 2, 1)
    best = min(steps, key=lambda s: abs(s[1] - TARGET_CNR))
    return {"counts": best[0], "cnr": best[1], "steps": steps, "seed": CAL_SEED}


def void_bound(clean32, noise, case, t, k=vs.DEFAULT_K_SIGMA):
    """Per true void: SNR = (particle level − mean over the void) in the noise-free volume / σ of the
    noise mean over a ball of the void's volume; expected detected share Φ(SNR − k), by diameter."""
    disk3 = np.broadcast_to(case["disk"], noise.shape)
    radii = (1, 2, 3, 4, 6)
    sig = {r: float(vs.ball_mean(noise, r)[ndi.binary_erosion(disk3, structure=vs.ball(r))].std())
           for r in radii}
    n_r = np.array([vs.ball(r).sum() for r in radii], float)
    s_r = np.array([sig[r] for r in radii])
    comps, d_nm = t["void_comps"], t["void_d_nm"]
    size = np.bincount(comps.ravel(), minlength=d_nm.size).astype(float)
    mean_in = ndi.mean(clean32, comps, index=np.arange(d_nm.size))
    owner_of = ndi.maximum(t["owner"], comps, index=np.arange(d_nm.size)).astype(int)
    solid = (t["filled"] > 0) & (t["owner"] == 0)
    level = ndi.median(clean32, np.where(solid, t["filled"], 0), index=np.arange(t["filled"].max() + 1))
    snr = np.zeros(d_nm.size)
    for i in range(1, d_nm.size):
        s = np.exp(np.interp(np.log(size[i]), np.log(n_r), np.log(s_r)))  # σ of an n-voxel mean
        snr[i] = (level[owner_of[i]] - mean_in[i]) / s
    p = norm.cdf(snr - k)
    solid_level = float(np.median(clean32[solid]))
    air_level = float(np.median(clean32[case["air_roi"]]))
    # deficit of each void in the noise-free reconstruction as a share of the full NMC-air contrast
    depth = np.array([(level[owner_of[i]] - mean_in[i]) / (solid_level - air_level) if i else 0.0
                      for i in range(d_nm.size)])
    out = {"sigma_ball": {str(r): sig[r] for r in radii}, "bins": []}
    for lo, hi in zip(BINS_NM[:-1], BINS_NM[1:], strict=True):
        sel = (d_nm >= lo) & (d_nm < hi)
        sel[0] = False
        out["bins"].append({"lo": lo, "hi": hi, "n": int(sel.sum()),
                            "snr_median": float(np.median(snr[sel])) if sel.any() else None,
                            "depth_median": float(np.median(depth[sel])) if sel.any() else None,
                            "expected": float((p[sel] * size[sel]).sum() / size[sel].sum())
                            if sel.any() else None})
    sel = d_nm >= 150
    sel[0] = False
    out["expected_ge150"] = float((p[sel] * size[sel]).sum() / size[sel].sum()) if sel.any() else None
    sel = d_nm >= 50
    sel[0] = False
    out["expected_ge50"] = float((p[sel] * size[sel]).sum() / size[sel].sum()) if sel.any() else None
    return out


def voids_in_true_envelopes(v8, case, t, air_grey):
    """Both void rules inside the true particle envelopes; scores as in bench_ct_chain.void_scores."""
    import pandas as pd

    filled = t["filled"]
    sizes = np.bincount(filled.ravel())
    ids = np.flatnonzero(sizes[1:]) + 1
    matched = pd.DataFrame({"label": ids, "reference": ids})
    res = {}
    table, mask = vd.voids_from_particle_statistics(v8, filled, air_grey)
    tab2, mask2, sigma = vs.voids_by_significance(v8, filled, case["air_roi"])
    for rule, (tb, m) in {"per-voxel": (table, mask), "significance": (tab2, mask2)}.items():
        voided, free, hit, vol, d_nm = void_scores(tb, m, matched, sizes, t)
        curve = []
        for lo, hi in zip(BINS_NM[:-1], BINS_NM[1:], strict=True):
            sel = (d_nm >= lo) & (d_nm < hi)
            sel[0] = False
            curve.append(float(hit[sel].sum() / vol[sel].sum()) if vol[sel].sum() else None)
        sel = d_nm >= 150
        sel[0] = False
        res[rule] = {
            "void_err": float(np.median(np.abs(voided[:, 0] - voided[:, 1]))) if len(voided) else None,
            "void_free_vf": float(np.median(free[:, 0])) if len(free) else None,
            "voids_ge150": float(hit[sel].sum() / vol[sel].sum()) if vol[sel].sum() else None,
            "curve": curve, "n_voided": len(voided), "n_free": len(free),
        }
    res["significance"]["sigma_ball_air"] = {str(k): v for k, v in sigma.items()}
    return res


def masks_for(v8, v32, cv, npow, case, clean8=None):
    nmc_true = case["nmc_true"]
    tv = denoise_volume(v8, "tv")
    out = {
        ("none", "oracle"): v8 > ps.oracle_threshold(v8, nmc_true),
        ("median 5", "oracle"): None,
        ("tv", "oracle"): tv > ps.oracle_threshold(tv, nmc_true),
    }
    med = denoise_volume(v8, "median")
    out[("median 5", "oracle")] = med > ps.oracle_threshold(med, nmc_true)
    w = cv.window.to_8bit(nz.wiener_filter(v32, npow))
    out[("wiener (oracle NPS)", "oracle")] = w > ps.oracle_threshold(w, nmc_true)
    for fname, vol in (("tv", tv), ("median 5", med)):
        try:
            auto = seg.nmc_threshold_auto(vol)
            out[(fname, "auto")] = vol > auto.threshold
        except ValueError as err:
            out[(fname, "auto")] = str(err).split(";")[0]
    if clean8 is not None:
        out[("noise-free chain", "oracle")] = clean8 > ps.oracle_threshold(clean8, nmc_true)
    if "--no-chan-vese" in sys.argv:
        return out
    t0 = time.perf_counter()
    cv_args = (CV_ITER, CV_SMOOTH)
    out[("tv + Chan-Vese", "init: tv oracle")] = mm.chan_vese_mask(tv, out[("tv", "oracle")], *cv_args)
    if not isinstance(out[("tv", "auto")], str):
        out[("tv + Chan-Vese", "init: tv auto")] = mm.chan_vese_mask(tv, out[("tv", "auto")], *cv_args)
    print(f"  chan-vese {time.perf_counter() - t0:.0f} s", flush=True)
    return out


def run(name, retrievals, seeds):
    case = setup(name)
    t = case["t"]
    rows = []
    for retrieval in retrievals:
        counts = counts_for(retrieval)
        clean = reconstruct(case, retrieval, seeds[0], CLEAN_COUNTS, noise=False)
        clean32 = clean.to_32bit()
        for seed in seeds:
            t0 = time.perf_counter()
            cv = reconstruct(case, retrieval, seed, counts, center=str(clean.center_px))
            v8, v32 = cv.volume_8bit, cv.to_32bit()
            noise = v32 - clean32
            disk3 = np.broadcast_to(case["disk"], noise.shape)
            contrast = v32[case["nmc_roi"]].mean() - v32[case["air_roi"]].mean()
            box = max(int(case["d50_vox"] / 2), 3)
            base = {
                "case": name, "retrieval": retrieval, "seed": seed, "counts_per_distance": counts,
                "n_distances": len(RETRIEVALS[retrieval][1]), "d50_vox": case["d50_vox"],
                "cnr": float(contrast / v32[case["air_roi"]].std()),
                "cnr_noise_only": float(contrast / noise[disk3].std()),
                "sigma_noise": float(noise[disk3].std()),
                "cnr_box": float(contrast / ndi.uniform_filter(noise, size=box)[disk3].std()),
                "hwhm": nz.correlation_length(noise),
                "bound": void_bound(clean32, noise, case, t),
            }
            air_grey = float(np.median(v8[case["air_roi"]]))
            base["voids"] = voids_in_true_envelopes(v8, case, t, air_grey)
            print(f"{name} {retrieval} seed {seed}: CNR {base['cnr']:.2f} box {base['cnr_box']:.1f} "
                  f"HWHM {base['hwhm']} voids {base['voids']} bound {base['bound']['bins']}", flush=True)
            _, npow = nz.radial_power(noise)
            clean8 = clean.volume_8bit if seed == seeds[0] else None
            for (method, rule), mask in masks_for(v8, v32, cv, npow, case, clean8).items():
                row = dict(base, method=method, rule=rule)
                if isinstance(mask, str):
                    row["refused"] = mask
                    rows.append(row)
                    continue
                mask_iou = float((mask & case["nmc_true"]).sum() / (mask | case["nmc_true"]).sum())
                row.update(mask_iou=mask_iou, nmc_volume_error=float(mask.sum() / case["nmc_true"].sum() - 1),
                           matched_all=None, matched_big=None)
                if mask_iou >= ps.SKIP_BELOW_MASK_IOU:
                    res = seg.segment_particles(mm.mask_as_grey(mask), threshold=127)
                    s = ps.particle_scores(res.labels, t, v8, air_grey, mask)
                    row.update(matched_all=s["matched_all"], matched_big=s["matched_big"],
                               found=s["found"], true=s["true"])
                rows.append(row)
                print(f"  {method:22s} {rule:16s} maskIoU {mask_iou:.3f} NMC {row['nmc_volume_error']:+.3f} "
                      f"matched {row['matched_all']} big {row['matched_big']}", flush=True)
            print(f"  seed done in {time.perf_counter() - t0:.0f} s", flush=True)
    return rows


# ------------------------------------------------------------------------------------------ tables
def cached_8bit(case, retrieval, seed, counts, center=None):
    """8-bit volume of one chain and seed, kept as ``.npy`` in OUT (reruns skip the simulation)."""
    phase, distances = RETRIEVALS[retrieval]
    noise = seed is not None
    idx = list(RETRIEVALS).index(retrieval)
    f = OUT / f"v8_{case['name']}_r{idx}_{seed if noise else 'clean'}_{counts:.1f}.npy"
    if f.exists():
        return np.load(f), None
    cv = reconstruct(case, retrieval, seed if noise else SEEDS[0], counts, noise=noise,
                     center="auto" if center is None else str(center))
    np.save(f, cv.volume_8bit)
    return cv.volume_8bit, cv.center_px


def old_rule_threshold(counts):
    """The automatic threshold before round 4: three fitted components always read air, glue, NMC."""
    try:
        return seg.fit_three_phases(counts).threshold_nmc_midpoint
    except ValueError:
        return seg.nmc_threshold_auto(counts).threshold


def auto_threshold_rows(name, retrievals, seeds):
    """Round 4: oracle vs automatic global thresholds on the median-filtered volume, per chain and seed."""
    from skimage.filters import threshold_multiotsu

    case = setup(name)
    t, nmc_true = case["t"], case["nmc_true"]
    big = None
    rows = []
    for retrieval in retrievals:
        counts = counts_for(retrieval)
        idx = list(RETRIEVALS).index(retrieval)
        clean_f = OUT / f"center_{name}_r{idx}.json"
        if clean_f.exists():
            center = json.loads(clean_f.read_text())["center_px"]
        else:
            center = reconstruct(case, retrieval, SEEDS[0], CLEAN_COUNTS, noise=False).center_px
            clean_f.write_text(json.dumps({"center_px": center}))
        for seed in seeds:
            v8, _ = cached_8bit(case, retrieval, seed, counts, center)
            mf = OUT / f"med5_{name}_r{idx}_{seed}.npy"
            if mf.exists():
                med = np.load(mf)
            else:
                med = denoise_volume(v8, "median")
                np.save(mf, med)
            hist = seg.grey_histogram(med)
            ths, ious = seg.mask_iou_by_threshold(med, nmc_true)
            auto = None
            try:
                auto = seg.nmc_threshold_auto(hist)
            except ValueError as err:
                refusal = str(err).split(";")[0]
            rules = {"oracle": float(ths[int(np.argmax(ious))]),
                     "old rule (before round 4)": old_rule_threshold(hist),
                     "multi-Otsu 3 classes (cross-check)": float(threshold_multiotsu(
                         hist=(hist[1:255], np.arange(1, 255)), classes=3)[1])}
            if auto is not None:
                rules["auto: mid-grey (ct-analyse --denoise median)"] = auto.threshold
                rules["auto: crossing (threshold_crossing)"] = auto.threshold_crossing
            done = {}
            for rule, thr in rules.items():
                row = {"case": name, "retrieval": retrieval, "seed": seed, "rule": rule, "threshold": thr,
                       "oracle_threshold": rules["oracle"], "phases": None if auto is None else auto.note}
                mask = med > thr
                row.update(mask_iou=float((mask & nmc_true).sum() / (mask | nmc_true).sum()),
                           nmc_volume_error=float(mask.sum() / nmc_true.sum() - 1))
                key = int(np.floor(thr))
                if key not in done:
                    labels = seg.segment_particles(mm.mask_as_grey(mask), threshold=127).labels
                    rep = seg.match_labels(labels, t["filled"], iou_min=0.8)
                    if big is None:
                        sizes = np.bincount(t["filled"].ravel())
                        ids = np.flatnonzero(sizes[1:]) + 1
                        big = (6 * sizes[ids] / np.pi) ** (1 / 3) * VOXEL_UM >= 0.6
                    done[key] = (float(rep.matched_fraction),
                                 float(np.mean(rep.iou_of_reference[big] >= 0.8)))
                row["matched_all"], row["matched_big"] = done[key]
                rows.append(row)
                print(f"{name} {retrieval} seed {seed} {rule}: t {thr:.1f} IoU {row['mask_iou']:.3f} "
                      f"vol {row['nmc_volume_error']:+.1%} matched>=0.6um {row['matched_big']:.0%}",
                      flush=True)
            if auto is None:
                rows.append({"case": name, "retrieval": retrieval, "seed": seed, "refused": refusal,
                             "rule": "auto: mid-grey (ct-analyse --denoise median)"})
    return rows


def summarise_auto(rows) -> str:
    rows = list({(r["case"], r["retrieval"], r["seed"], r["rule"]): r for r in rows}.values())
    lines = ["| case | retrieval | rule | seeds | threshold (oracle) per seed | mask IoU | NMC vol. | "
             r"matched (d ≥ 0.6 µm) | seeds meeting ≥ 80 % and \|NMC vol.\| ≤ 5 % |", "|" + "---|" * 9]
    for key in dict.fromkeys((r["case"], r["retrieval"], r["rule"]) for r in rows):
        rr = sorted((r for r in rows if (r["case"], r["retrieval"], r["rule"]) == key),
                    key=lambda r: r["seed"])
        ok = [r for r in rr if "mask_iou" in r]
        seeds = ",".join(str(r["seed"]) for r in rr)
        if not ok:
            lines.append(f"| {' | '.join(key)} | {seeds} | refused | – | – | – | 0/{len(rr)} |")
            continue
        per_seed = ", ".join(f"{r['threshold']:.1f} ({r['oracle_threshold']:.0f})" for r in ok)
        meet = sum(r["matched_big"] >= 0.8 and abs(r["nmc_volume_error"]) <= 0.05 for r in ok)
        lines.append(f"| {' | '.join(key)} | {seeds} | {per_seed} | "
                     f"{_sp([r['mask_iou'] for r in ok], '.3f')} | "
                     f"{_sp([r['nmc_volume_error'] for r in ok], '+.1%')} | "
                     f"{_sp([r['matched_big'] for r in ok], '.0%')} | {meet}/{len(rr)} |")
    return "\n".join(lines)


def _sp(values, fmt):
    return ps._spread(list(values), fmt)


def summarise(rows) -> str:
    rows = list({(r["case"], r["retrieval"], r["seed"], r["method"], r["rule"]): r for r in rows}.values())
    keys = list(dict.fromkeys((r["case"], r["retrieval"]) for r in rows))
    lines = ["| case | retrieval | counts / px / proj. / distance (design) | CNR (σ of all air) | CNR, noise "
             "averaged over d50/2 boxes | noise HWHM x / z (vox) | σ of the noise mean over a ball of "
             "radius 1 / 3 / 6 vox, ÷ σ per voxel (white noise: 0.38 / 0.09 / 0.03) |", "|" + "---|" * 7]
    for key in keys:
        rr = list({r["seed"]: r for r in rows if (r["case"], r["retrieval"]) == key}.values())
        s1 = [r["cnr_noise_only"] for r in rr]
        ratio = [[r["bound"]["sigma_ball"][k] / r["sigma_noise"] for r in rr] for k in "136"]
        lines.append(
            f"| {key[0]} | {key[1]} | {rr[0]['counts_per_distance']:.1f} × {rr[0]['n_distances']} | "
            f"{_sp([r['cnr'] for r in rr], '.2f')} | {_sp([r['cnr_box'] for r in rr], '.1f')} | "
            f"{_sp([r['hwhm']['x'] for r in rr], '.1f')} / {_sp([r['hwhm']['z'] for r in rr], '.1f')} | "
            f"{' / '.join(_sp(x, '.2f') for x in ratio)} (CNR per voxel of the noise {_sp(s1, '.2f')}) |")
    lines += ["", "| case | retrieval | method | rule | mask IoU | NMC vol. | matched (all) | "
              "matched (d ≥ 0.6 µm) | refused |", "|" + "---|" * 9]
    mkeys = list(dict.fromkeys((r["case"], r["retrieval"], r["method"], r["rule"]) for r in rows))
    for key in mkeys:
        rr = [r for r in rows if (r["case"], r["retrieval"], r["method"], r["rule"]) == key]
        ok = [r for r in rr if "mask_iou" in r]
        if not ok:
            lines.append(f"| {' | '.join(key)} | – | – | – | – | {len(rr)}/{len(rr)} |")
            continue
        lines.append(f"| {' | '.join(key)} | {_sp([r['mask_iou'] for r in ok], '.3f')} | "
                     f"{_sp([r['nmc_volume_error'] for r in ok], '+.1%')} | "
                     f"{_sp([r['matched_all'] for r in ok], '.0%')} | "
                     f"{_sp([r['matched_big'] for r in ok], '.0%')} | "
                     f"{len(rr) - len(ok)}/{len(rr)} |")
    lines += ["", "Voids inside the true particle envelopes (unfiltered volume). Curve = share of the "
              "true void volume recovered by void diameter 50–100 / 100–150 / 150–200 / 200–300 nm; "
              "bound = expected share for a matched-filter test at k = 3.7 given the measured noise "
              "(Φ(SNR − k)).", "",
              "| case | retrieval | rule | voids ≥ 150 nm | curve | median \\|vf error\\| voided (n) | "
              "median vf void-free (n) |", "|" + "---|" * 7]
    for key in keys:
        rr = list({r["seed"]: r for r in rows if (r["case"], r["retrieval"]) == key}.values())
        for rule in ("per-voxel", "significance"):
            v = [r["voids"][rule] for r in rr]
            curve = " / ".join(_sp([x["curve"][i] for x in v], ".0%") for i in range(4))
            lines.append(f"| {key[0]} | {key[1]} | {rule} | {_sp([x['voids_ge150'] for x in v], '.0%')} | "
                         f"{curve} | "
                         f"{_sp([x['void_err'] for x in v], '.3f')} ({v[0]['n_voided']}) | "
                         f"{_sp([x['void_free_vf'] for x in v], '.4f')} ({v[0]['n_free']}) |")
        b = [r["bound"] for r in rr]
        curve = " / ".join(_sp([x["bins"][i]["expected"] for x in b], ".0%") for i in range(4))
        snr = " / ".join(_sp([x["bins"][i]["snr_median"] for x in b], ".1f") for i in range(4))
        depth = " / ".join(_sp([x["bins"][i].get("depth_median") for x in b], ".2f") for i in range(4))
        lines.append(f"| {key[0]} | {key[1]} | **bound** (median SNR {snr}; noise-free depth {depth}) | "
                     f"{_sp([x['expected_ge150'] for x in b], '.0%')} | {curve} | – | – |")
    return "\n".join(lines)


def write_results(rows) -> None:
    """Replace the multi-distance section of RESULTS_ct_chain.md (between its markers) by the tables."""
    ps.replace_marked_block("multidistance", summarise(rows))


def main():
    if "--help" in sys.argv or "-h" in sys.argv:
        print(__doc__)
        return
    global OUT
    for arg in sys.argv[1:]:
        if arg.startswith("--cache="):  # projections, reconstructions and 8-bit volumes (not the tables)
            OUT = ps.OUT = Path(arg.split("=", 1)[1])
    OUT.mkdir(parents=True, exist_ok=True)
    results = Path(__file__).resolve().parent / "out"
    results.mkdir(exist_ok=True)
    names = [a for a in sys.argv[1:] if not a.startswith("--")] or ["paper-size", "small"]
    retrievals = list(RETRIEVALS)[:2]
    for arg in sys.argv[1:]:
        if arg.startswith("--retrievals="):
            retrievals = [list(RETRIEVALS)[int(i)] for i in arg.split("=")[1].split(",")]
    if "--auto-threshold" in sys.argv:
        seeds = SEEDS
        for arg in sys.argv[1:]:
            if arg.startswith("--seeds="):
                seeds = tuple(int(v) for v in arg.split("=")[1].split(","))
        if "--table" not in sys.argv:
            for name in names if names != ["paper-size", "small"] else ["paper-size"]:
                rows = auto_threshold_rows(name, retrievals, seeds)
                tag = ("_".join(str(list(RETRIEVALS).index(r)) for r in retrievals) + "_s"
                       + "_".join(map(str, seeds)))
                (results / f"ct_multidistance_auto_{name}_{tag}.json").write_text(json.dumps(rows, indent=1))
        rows = [r for f in sorted(results.glob("ct_multidistance_auto_*.json"))
                for r in json.loads(f.read_text())]
        ps.replace_marked_block("multidistance-auto", summarise_auto(rows))
        return
    if "--calibrate" in sys.argv:
        cal = json.loads(CAL_FILE.read_text()) if CAL_FILE.exists() else {}
        for retrieval in retrievals:
            if retrieval != "paganin 1-d":
                cal[retrieval] = calibrate(setup("paper-size"), retrieval)
        CAL_FILE.write_text(json.dumps(cal, indent=1))
        return
    if "--table" in sys.argv:
        rows = []
        for f in sorted(OUT.glob("ct_multidistance_run_*.json")):
            rows += json.loads(f.read_text())
        if not rows:
            sys.exit(f"no ct_multidistance_run_*.json in {OUT}: run the benchmark first "
                     "(the tables in RESULTS_ct_chain.md are left as they are)")
        write_results(rows)
        return
    seeds = SEEDS
    for arg in sys.argv[1:]:
        if arg.startswith("--seeds="):
            seeds = tuple(int(v) for v in arg.split("=")[1].split(","))
    for name in names:
        rows = run(name, retrievals, seeds)
        tag = "" if retrievals == list(RETRIEVALS)[:2] else "_" + "_".join(
            str(list(RETRIEVALS).index(r)) for r in retrievals)
        tag += "" if seeds == SEEDS else "_s" + "_".join(map(str, seeds))
        (OUT / f"ct_multidistance_run_{name}{tag}.json").write_text(json.dumps(rows, indent=1, default=float))
    rows = []
    for f in sorted(OUT.glob("ct_multidistance_run_*.json")):
        rows += json.loads(f.read_text())
    write_results(rows)


if __name__ == "__main__":
    main()
