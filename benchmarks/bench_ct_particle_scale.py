"""Does the chain recover particle outlines at the paper's CNR when the particles have the paper's size?

After Paganin retrieval (δ/β 87, z = 0.1 mm, 25 nm voxels: low-pass width √(πλz·δ/β) ≈ 43 px) and FBP
the reconstruction noise is correlated over a fixed physical length. The bundled 128³ sample has
particles of d50 0.8 µm (32 voxels), the paper's are 1.9 µm (76 voxels). Two phantoms, same physics,
same dose (150 counts per pixel and projection, design input), same chain (``ct-reconstruct``):

- ``small``: the bundled ``ct_powder3d`` phantom, 128³, d50 0.8 µm;
- ``paper-size``: 128 × 256², d50 1.9 µm with a narrower size law (σ_ln 0.3) so that the particles fit
  in the 3.2 µm thick box (fewer particles: the statistics are per seed, three noise seeds).

For each noise seed (3) and a noise-free scan (the noise-only volume = noisy − noise-free
reconstruction, in δ units): the paper's CNR with σ of air measured three ways, the noise correlation
length, and every mask method of ``helpers.nanoct.mask_methods`` / ``denoise`` / ``noise``, each at
the best global threshold the truth allows (``oracle``, an upper bound for that method) and the
automatic threshold where it applies. Voids: ``voids_from_particle_statistics`` on the un-filtered
volume inside each found particle, air level = median grey of the true air (oracle, same for all).

Usage: ``python benchmarks/bench_ct_particle_scale.py [CASE ...] [--quick] [--seeds=11,12]``; writes
``benchmarks/out/ct_particle_scale_*.json`` and the table section of ``RESULTS_ct_chain.md``
(``--table`` rebuilds that section from the stored runs).
Shared 2-core machine: a full run takes ≈ 25 min (projections of the 256² phantom are cached).
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

from helpers.nanoct import chain
from helpers.nanoct import mask_methods as mm
from helpers.nanoct import noise as nz
from helpers.nanoct import segment as seg
from helpers.nanoct import voids as vd
from helpers.nanoct.denoise import denoise_volume
from helpers.synthetic import ct_phantom, ct_projections, ct_samples

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_ct_chain import truth_of, void_scores  # noqa: E402

OUT = Path(__file__).resolve().parent / "out"
VOXEL_UM = 0.025
CASES = {
    "small": dict(shape=(128, 128, 128), seed=ct_samples.SAMPLE3D_SEED, d50=ct_samples.SAMPLE3D_D50_UM,
                  sigma_ln=0.5),
    "paper-size": dict(shape=(128, 256, 256), seed=3, d50=1.9, sigma_ln=0.3),
}
NOISE_SEEDS = (11, 12, 13)
#: masks whose voxel IoU with the true NMC is under this are not labelled (a particle matched at IoU ≥ 0.8
#: needs its own voxels right to that level; labelling thousands of noise fragments is the slow step)
SKIP_BELOW_MASK_IOU = 0.7
_PROJ_CACHE: dict = {}
_project = ct_projections.project_volume


def cached_projection(volume, angles, supersample=2):
    """project_volume, memoised on the volume's bytes (noise seeds share the noise-free projections)."""
    key = hashlib.sha1(np.ascontiguousarray(volume).tobytes()).hexdigest() + f"{len(angles)}-{supersample}"
    f = OUT / f"proj_{key[:20]}.npy"
    if f.exists():
        return np.load(f)
    out = _project(volume, angles, supersample)
    np.save(f, out)
    return out


ct_projections.project_volume = cached_projection


def particle_scores(labels, t, grey_for_voids, air_grey, mask):
    filled = t["filled"]
    rep = seg.match_labels(labels, filled, iou_min=0.8)
    sizes = np.bincount(filled.ravel())
    ref_ids = np.flatnonzero(sizes[1:]) + 1
    d_eq_um = (6 * sizes[ref_ids] / np.pi) ** (1 / 3) * VOXEL_UM
    big = d_eq_um >= 0.6
    nmc_true = t["phase"] == ct_phantom.NMC
    partners = seg.best_partners(labels, filled)
    ok = partners[partners.iou >= 0.8]
    table, void_mask = vd.voids_from_particle_statistics(grey_for_voids, labels, air_grey)
    voided, free, hit, vol, d_nm = void_scores(table, void_mask, ok, sizes, t)
    sel = d_nm >= 150
    sel[0] = False
    return {
        "found": int(labels.max()), "true": int(ref_ids.size), "n_big": int(big.sum()),
        "matched_all": float(rep.matched_fraction),
        "matched_big": float(np.mean(rep.iou_of_reference[big] >= 0.8)) if big.any() else None,
        "mask_iou": float(np.count_nonzero(mask & nmc_true) / np.count_nonzero(mask | nmc_true)),
        "nmc_volume_error": float(np.count_nonzero(mask) / nmc_true.sum() - 1),
        "void_err": float(np.median(np.abs(voided[:, 0] - voided[:, 1]))) if len(voided) else None,
        "void_free_vf": float(np.median(free[:, 0])) if len(free) else None,
        "voids_ge150": float(hit[sel].sum() / max(vol[sel].sum(), 1)) if vol[sel].sum() else None,
    }


def oracle_threshold(volume, nmc_true):
    thresholds, iou = seg.mask_iou_by_threshold(volume, nmc_true)
    return float(thresholds[int(np.argmax(iou))])


def run_case(name, cfg, quick=False):
    phantom = ct_phantom.make_powder_phantom(cfg["shape"], rng=cfg["seed"], d50_volume_um=cfg["d50"],
                                             size_sigma_ln=cfg["sigma_ln"])
    t = truth_of(phantom)
    nmc_true = t["phase"] == ct_phantom.NMC
    d50_vox = ct_phantom.volume_weighted_median_um(phantom.truth.d_eq_um.to_numpy()) / VOXEL_UM
    angles = np.linspace(0, 2 * np.pi, ct_samples.SAMPLE_ANGLES, endpoint=False)
    ny = cfg["shape"][1]
    disk = ct_projections.pillar_mask(ny, ny)[None]
    air_roi = ndi.binary_erosion((t["phase"] == 0) & disk, iterations=2)
    nmc_roi = ndi.binary_erosion(nmc_true, iterations=2)

    def recon(seed, noise=True, center="auto"):
        scan = ct_projections.simulate_scan(
            phantom.delta_volume(), phantom.beta_volume(), angles,
            distances_m=(ct_samples.SAMPLE3D_DISTANCE_M,), rng=seed, noise=noise,
        )
        path = ct_projections.write_nxtomo(OUT / f"scale_{name}_{seed}_{int(noise)}.h5", scan)
        return chain.reconstructed_volume(path, center=center, cache_folder=OUT / "chain_cache")

    clean = recon(NOISE_SEEDS[0], noise=False)
    clean32 = clean.to_32bit()
    rows = []
    seeds = NOISE_SEEDS[: 1 if quick else None]
    for arg in sys.argv[1:]:
        if arg.startswith("--seeds="):
            seeds = tuple(int(v) for v in arg.split("=")[1].split(","))
    for seed in seeds:
        cv = recon(seed, center=str(clean.center_px))
        v8, v32 = cv.volume_8bit, cv.to_32bit()
        noise = v32 - clean32
        corr = nz.correlation_length(noise)
        air_grey = float(np.median(v8[air_roi]))
        sigma8 = float(v8[air_roi].std())
        contrast = v32[nmc_roi].mean() - v32[air_roi].mean()
        cnr = {
            "cnr_air_pooled": float(contrast / v32[air_roi].std()),
            "cnr_air_boxes8": float(contrast / nz.sigma_in_boxes(v32, air_roi, 8)),
            "cnr_noise_only": float(contrast / noise[disk.repeat(noise.shape[0], 0)].std()),
            "cnr_noise_free_recon_to_particle_scale": float(
                contrast / ndi.uniform_filter(noise, size=max(int(d50_vox / 2), 3))[disk.repeat(
                    noise.shape[0], 0)].std()),
        }
        print(f"{name} seed {seed}: d50 {d50_vox:.0f} vox, corr HWHM {corr}, {cnr}", flush=True)
        k, npow = nz.radial_power(noise)
        t_raw = oracle_threshold(v8, nmc_true)
        methods = {}
        methods["none"] = (v8, None)
        for m in ("median", "tv", "nlm"):
            methods[m] = (denoise_volume(v8, m), None)
        w32 = nz.wiener_filter(v32, npow)
        methods["wiener (oracle NPS)"] = (cv.window.to_8bit(w32), None)
        methods["hysteresis"] = (None, mm.hysteresis_mask(v8, t_raw, sigma8))
        r_open = int(np.clip(round(np.nanmean([corr["y"], corr["x"]]) / 2), 1, max(1, d50_vox / 8)))
        methods[f"open/close r={r_open}"] = (None, mm.open_close_mask(v8, t_raw, r_open))
        t0 = time.perf_counter()
        methods["random walker"] = (None, mm.random_walker_mask(ndi.median_filter(v8, 3), t_raw, sigma8))
        print(f"  random walker {time.perf_counter() - t0:.0f} s", flush=True)
        methods["noise-free chain"] = (clean.volume_8bit, None)
        for mname, (vol, mask) in methods.items():
            rules = []
            if mask is not None:
                rules.append(("oracle T (raw)", mask))
            else:
                rules.append(("oracle", vol > oracle_threshold(vol, nmc_true)))
                try:
                    auto = seg.nmc_threshold_auto(vol)
                    rules.append(("auto", vol > auto.threshold))
                except ValueError as err:
                    rows.append({"case": name, "seed": seed, "method": mname, "rule": "auto",
                                 "refused": str(err).split(";")[0]})
            for rule, msk in rules:
                mask_iou = float(np.count_nonzero(msk & nmc_true) / np.count_nonzero(msk | nmc_true))
                if mask_iou < SKIP_BELOW_MASK_IOU:  # no particle outline can be right: skip the slow steps
                    s = {"mask_iou": mask_iou, "nmc_volume_error": float(msk.sum() / nmc_true.sum() - 1),
                         "found": None, "true": None, "matched_all": None, "matched_big": None,
                         "void_err": None, "void_free_vf": None, "voids_ge150": None}
                else:
                    res = seg.segment_particles(mm.mask_as_grey(msk), threshold=127)
                    s = particle_scores(res.labels, t, v8, air_grey, msk)
                s.update({"case": name, "seed": seed, "method": mname, "rule": rule, "d50_vox": d50_vox,
                          "corr_hwhm": corr, **cnr})
                rows.append(s)
                print(f"  {mname:22s} {rule:15s} found {s['found']}/{s['true']} "
                      f"matched {s['matched_all']} big {s['matched_big']} maskIoU {s['mask_iou']:.3f} "
                      f"NMC {s['nmc_volume_error']:+.3f} voids150 {s['voids_ge150']} verr {s['void_err']} "
                      f"free {s['void_free_vf']}", flush=True)
    return rows


def _spread(values, fmt):
    v = [x for x in values if x is not None]
    if not v:
        return "–"
    if len(v) == 1 or min(v) == max(v):
        return format(v[0], fmt) + (f" ({len(v)})" if len(v) < len(values) else "")
    return f"{format(float(np.mean(v)), fmt)} [{format(min(v), fmt)}, {format(max(v), fmt)}]"


def summarise(rows) -> str:
    """Markdown: the noise measures per case and the method table, mean [min, max] over seeds."""
    cases = list(dict.fromkeys(r["case"] for r in rows))
    lines = ["| case | d50 (vox) | seeds | CNR, σ of all air | CNR, σ in 8³ air boxes | CNR, σ of the noise "
             "| CNR, noise averaged over d50/2 boxes | noise HWHM x / z (vox) |", "|" + "---|" * 8]
    for c in cases:
        rr = {r["seed"]: r for r in rows if r["case"] == c and "cnr_air_pooled" in r}.values()
        rr = list(rr)
        def col(name, fmt, rr=rr):
            return _spread([r[name] for r in rr], fmt)

        hw = [_spread([r["corr_hwhm"][a] for r in rr], ".1f") for a in "xz"]
        lines.append(f"| {c} | {rr[0]['d50_vox']:.0f} | {len(rr)} | {col('cnr_air_pooled', '.2f')} | "
                     f"{col('cnr_air_boxes8', '.2f')} | {col('cnr_noise_only', '.2f')} | "
                     f"{col('cnr_noise_free_recon_to_particle_scale', '.1f')} | {hw[0]} / {hw[1]} |")
    lines += ["", "| case | method | rule | mask IoU | NMC vol. | matched (all) | matched (d ≥ 0.6 µm) | "
              "voids ≥ 150 nm | void-free vf | refused (auto) |", "|" + "---|" * 10]
    keys = list(dict.fromkeys((r["case"], r["method"], r["rule"]) for r in rows))
    for key in keys:
        rr = [r for r in rows if (r["case"], r["method"], r["rule"]) == key]
        ok = [r for r in rr if "mask_iou" in r]
        refused = len(rr) - len(ok)
        if not ok:
            lines.append(f"| {key[0]} | {key[1]} | {key[2]} | – | – | – | – | – | – | {refused}/{len(rr)} |")
            continue
        def cell(name, fmt, ok=ok):
            return _spread([r[name] for r in ok], fmt)

        lines.append(f"| {key[0]} | {key[1]} | {key[2]} | {cell('mask_iou', '.3f')} | "
                     f"{cell('nmc_volume_error', '+.1%')} | {cell('matched_all', '.0%')} | "
                     f"{cell('matched_big', '.0%')} | {cell('voids_ge150', '.0%')} | "
                     f"{cell('void_free_vf', '.3f')} | {refused}/{len(rr)} |")
    return "\n".join(lines)


def replace_marked_block(name: str, body: str) -> None:
    """Replace the block between ``<!-- NAME:start -->`` and ``<!-- NAME:end -->`` of RESULTS_ct_chain.md
    by ``body`` (appended when the markers are absent), written atomically."""
    path = Path(__file__).resolve().parent / "RESULTS_ct_chain.md"
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    text = path.read_text()
    block = f"{start}\n{body}\n{end}"
    if start in text:
        text = text[: text.index(start)] + block + text[text.index(end) + len(end):]
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    tmp = path.with_suffix(".md.part")
    tmp.write_text(text)
    tmp.replace(path)


def write_results(rows) -> None:
    """Replace the particle-scale section of RESULTS_ct_chain.md (between its markers) by the table."""
    replace_marked_block("particle-scale", summarise(rows))


def main():
    OUT.mkdir(exist_ok=True)
    if "--table" in sys.argv:  # rebuild the table from the stored runs
        rows = []
        for f in sorted(OUT.glob("ct_particle_scale_*.json")):
            rows += json.loads(f.read_text())
        rows = list({(r["case"], r["seed"], r["method"], r["rule"]): r for r in rows}.values())
        if not rows:
            sys.exit(f"no ct_particle_scale_*.json in {OUT}: run the benchmark first "
                     "(the table in RESULTS_ct_chain.md is left as it is)")
        write_results(rows)
        return
    quick = "--quick" in sys.argv
    names = [a for a in sys.argv[1:] if not a.startswith("--")] or list(CASES)
    rows = []
    for name in names:
        rows += run_case(name, CASES[name], quick)
        tag = "".join(a for a in sys.argv[1:] if a.startswith("--seeds")).replace("--seeds=", "_")
        (OUT / f"ct_particle_scale_{name}{tag}.json").write_text(json.dumps(rows, indent=1, default=float))
    write_results(rows)


if __name__ == "__main__":
    main()
