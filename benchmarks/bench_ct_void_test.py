"""``ct-analyse --void-test significance`` end to end on the round-3 chains of bench_ct_multidistance.

Question: run as a user would (the command, ``--denoise tv``, the automatic threshold and the automatic
air region; nothing from the truth), does the significance void test keep the void scores that the
benchmark measured inside the *true* particle envelopes (voids ≥ 150 nm recovered, median |void-fraction
error| on voided particles, median void fraction on void-free ones)?

Volumes: the paper-size phantom through ``ct-reconstruct`` with bench_ct_multidistance's functions
(``ctf 4-d, 0.10-0.40 mm`` at 300 counts × 4 distances and ``paganin 1-d`` at 150 counts; noise seeds
11–13; the centre of the noise-free scan, as there), cached as 8-bit ``.npy`` in the cache folder. Per
volume: the command with ``--void-test significance`` and with the default threshold rule (same
segmentation), particles matched to the truth at IoU ≥ 0.8, void scores as bench_ct_chain.void_scores;
the command's void mask is re-made with the same per-crop function and the σ recorded in its output
(its void fractions are checked equal to the command's); the σ of ball means in the automatic air
region is compared with σ in the truth's air (eroded by 2 voxels, the benchmark's region); and the
significance test inside the true envelopes with the command's own σ (the benchmark's setting with a
truth-free σ).

Usage: ``python benchmarks/bench_ct_void_test.py [--cache=DIR] [--denoise=tv|median|nlm]
[--rule=crossing|midpoint] [--chains=ctf,paganin] [--table]`` (default cache ``benchmarks/out/void_test``);
results in ``DIR/results.json`` (``results_<denoise>_<rule>.json`` for other options); ``--table`` prints
the Markdown table.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_ct_multidistance as md  # noqa: E402
import bench_ct_particle_scale as ps  # noqa: E402
from bench_ct_chain import void_scores  # noqa: E402

CHAINS = {"ctf": "ctf 4-d, 0.10-0.40 mm", "paganin": "paganin 1-d"}
SEEDS = (11, 12, 13)
BINS_NM = (50, 100, 150, 200, 300)
DENOISE = "tv"  # the command's --denoise (``--denoise=NAME``); results in results.json or results_NAME.json
RULE = None  # the command's --threshold-rule (``--rule=crossing``; default: the command's own)


def volumes(cache: Path) -> dict:
    """Reconstruct (or reuse) the 8-bit volumes and the truth of the paper-size phantom."""
    ps.OUT = md.OUT = cache  # projections and reconstructions cached there
    truth_file = cache / "truth_paper-size.npz"
    case = md.setup("paper-size")
    t = case["t"]
    if not truth_file.exists():
        np.savez_compressed(truth_file, filled=t["filled"], owner=t["owner"], void_comps=t["void_comps"],
                            void_d_nm=t["void_d_nm"], air_roi=case["air_roi"])
    for tag, retrieval in CHAINS.items():
        if all((cache / f"vol_{tag}_{s}.npy").exists() for s in SEEDS):
            continue
        clean = md.reconstruct(case, retrieval, SEEDS[0], md.CLEAN_COUNTS, noise=False)
        for seed in SEEDS:
            f = cache / f"vol_{tag}_{seed}.npy"
            if not f.exists():
                cv = md.reconstruct(case, retrieval, seed, md.counts_for(retrieval),
                                    center=str(clean.center_px))
                np.save(f, cv.volume_8bit)
    return dict(np.load(truth_file))


def _scores(t, sizes, table, mask, matched):
    voided, free, hit, vol, d_nm = void_scores(table, mask, matched, sizes, t)
    sel = d_nm >= 150
    sel[0] = False
    return {"voids_ge150": float(hit[sel].sum() / vol[sel].sum()) if vol[sel].sum() else None,
            "void_err": float(np.median(np.abs(voided[:, 0] - voided[:, 1]))) if len(voided) else None,
            "void_free_vf": float(np.median(free[:, 0])) if len(free) else None,
            "n_voided": len(voided), "n_free": len(free)}


def run_one(cache: Path, t: dict, chain: str, seed: int) -> dict:
    import h5py
    import pandas as pd

    from helpers.cli import main
    from helpers.nanoct import segment as seg
    from helpers.nanoct import void_significance as vs
    from helpers.nanoct import voids as vd
    from helpers.nanoct.denoise import denoise_volume
    from helpers.nanoct.particles import bounding_boxes, padded_box

    filled = t["filled"]
    sizes = np.bincount(filled.ravel())
    src = cache / f"vol_{chain}_{seed}.npy"
    v8 = np.load(src)
    row = {"chain": chain, "seed": seed}
    tag = f"{chain}_{seed}" + _suffix()
    sig_out, thr_out = cache / f"sig_{tag}.h5", cache / f"thr_{tag}.h5"
    common = ["ct-analyse", str(src), "--overwrite", "--denoise", DENOISE, "--no-morphology",
              *([] if RULE is None else ["--threshold-rule", RULE])]
    t0 = time.perf_counter()
    extra = []
    if main([*common, "--out", str(sig_out), "--void-test", "significance"]) != 0:
        row["refused_then_forced"] = True  # the fitted threshold refused: forced, to score the voids
        extra = ["--min-predicted-iou", "0"]
        assert main([*common, "--out", str(sig_out), "--void-test", "significance", *extra]) == 0
    row["time_significance_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    assert main([*common, "--out", str(thr_out), *extra]) == 0
    row["time_threshold_s"] = time.perf_counter() - t0
    with h5py.File(sig_out) as f:
        labels = f["labels"][()]
        g = f["void_test"]
        radii = [int(r) for r in g["ball_radius_voxels"][()]]
        noise = vs.VolumeNoise(sigma=dict(zip(radii, g["sigma_ball_mean_grey"][()], strict=True)),
                               positions=dict(zip(radii, g["air_positions"][()], strict=True)),
                               air_grey=float(g.attrs["air_grey"]), region=str(g.attrs["air_region"]),
                               region_voxels=int(g.attrs["air_region_voxels"]))
    row.update(sigma_auto={str(r): float(noise.sigma[r]) for r in radii}, air_grey=noise.air_grey,
               air_voxels=noise.region_voxels)
    row["sigma_truth_air"] = {str(r): s for r, s in vs.ball_mean_sigma(v8, t["air_roi"], radii).items()}
    row["air_grey_truth"] = float(np.median(v8[t["air_roi"]]))
    with h5py.File(thr_out) as f:
        assert np.array_equal(f["labels"][()], labels)
        void_threshold = float(f.attrs["void_threshold_grey"])
    partners = seg.best_partners(labels, filled)
    matched = partners[partners.iou >= 0.8][["label", "reference"]]
    row.update(particles_found=int(labels.max()), particles_true=int((sizes[1:] > 0).sum()),
               matched=len(matched))
    sig_tab = pd.read_csv(cache / f"sig_{tag}_particles.csv")
    tab, mask, _ = vs.voids_by_significance(v8, labels, noise=noise)
    row["mask_consistent"] = bool(np.allclose(tab.void_fraction.to_numpy(), sig_tab.void_fraction.to_numpy()))
    row["significance"] = _scores(t, sizes, sig_tab[["label", "void_fraction"]], mask, matched)
    den = denoise_volume(v8, DENOISE)  # the threshold rule's void mask, as analyse_voids makes it
    mask_thr = np.zeros(v8.shape, bool)
    for lab, box in enumerate(bounding_boxes(labels), start=1):
        if box is None:
            continue
        cb = padded_box(box, labels.shape, 1)
        solid = (labels[cb] == lab) & (den[cb] > void_threshold)
        if solid.any():
            mask_thr[cb] |= vd.particle_voids(solid, with_sizes=False).void_mask
    thr_tab = pd.read_csv(cache / f"thr_{tag}_particles.csv")
    row["threshold"] = _scores(t, sizes, thr_tab[["label", "void_fraction"]], mask_thr, matched)
    tab_te, mask_te, _ = vs.voids_by_significance(v8, filled, noise=noise)
    ids = np.flatnonzero(sizes[1:]) + 1
    row["significance_true_envelopes"] = _scores(t, sizes, tab_te, mask_te,
                                                 pd.DataFrame({"label": ids, "reference": ids}))
    return row


def table(rows) -> str:
    def f(x, fmt):
        return "–" if x is None else format(x, fmt)

    lines = ["| chain | seed | particles found / true / matched | σ of ball means r = 1 / 2 / 4, auto ÷ "
             "truth air | rule | voids ≥ 150 nm | median \\|vf err\\| voided (n) | median vf void-free (n) |",
             "|" + "---|" * 8]
    for r in rows:
        ratio = " / ".join(f(r["sigma_auto"][k] / r["sigma_truth_air"][k], ".2f") for k in ("1", "2", "4"))
        forced = " (refused; forced)" if r.get("refused_then_forced") else ""
        for rule, name in (("significance", "command, significance"),
                           ("threshold", "command, threshold (default)"),
                           ("significance_true_envelopes", "significance in true envelopes, command's σ")):
            s = r[rule]
            lines.append(f"| {r['chain']} | {r['seed']} | {r['particles_found']} / {r['particles_true']} / "
                         f"{r['matched']}{forced} | {ratio} | {name} | {f(s['voids_ge150'], '.0%')} | "
                         f"{f(s['void_err'], '.3f')} ({s['n_voided']}) | {f(s['void_free_vf'], '.4f')} "
                         f"({s['n_free']}) |")
    return "\n".join(lines)


def _suffix() -> str:
    """File-name suffix of the command's options ("" for the default --denoise tv)."""
    return ("" if DENOISE == "tv" else f"_{DENOISE}") + ("" if RULE is None else f"_{RULE}")


def main():
    cache = Path(__file__).resolve().parent / "out" / "void_test"
    global DENOISE, RULE
    chains = list(CHAINS)
    for arg in sys.argv[1:]:
        if arg.startswith("--cache="):
            cache = Path(arg.split("=", 1)[1])
        if arg.startswith("--denoise="):
            DENOISE = arg.split("=", 1)[1]
        if arg.startswith("--rule="):
            RULE = arg.split("=", 1)[1]
        if arg.startswith("--chains="):
            chains = arg.split("=", 1)[1].split(",")
    results = cache / f"results{_suffix()}.json"
    if "--table" in sys.argv:
        print(table(json.loads(results.read_text())))
        return
    cache.mkdir(parents=True, exist_ok=True)
    t = volumes(cache)
    rows = json.loads(results.read_text()) if results.exists() else []
    done = {(r["chain"], r["seed"]) for r in rows}
    for chain in chains:
        for seed in SEEDS:
            if (chain, seed) not in done:
                rows.append(run_one(cache, t, chain, seed))
                results.write_text(json.dumps(rows, indent=1))
    print(table(rows))


if __name__ == "__main__":
    main()
