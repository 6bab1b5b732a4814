"""Where the nano-CT phantom tests' thresholds come from: the spread of their measures over seeds.

Run after a change of the phantom, the renderer, the denoiser or the segmentation, and update the
measured ranges stated beside the asserts of ``tests/test_nanoct_segment.py`` and
``tests/test_nanoct_voids.py`` (a threshold is set from the spread, never just under one seed's value).
For the phantoms each seed pair (phantom seed k, noise seed k + 1) draws a new phantom and new noise;
the tests use k = 0. ``touching`` and ``grey_particle`` keep the tests' exact shapes and draw new
noise (the tests use seeds 0 and 3). ``solidity`` is deterministic: its "seed" draws a sub-voxel shift
of the shapes (0: none, the test's case). All cases over 20 seeds take ≈ 5 min on a shared 2-core
machine; the numbers of the last run are in ``RESULTS_ct_seed_spread.md``::

    python benchmarks/ct_seed_spread.py [powder] [paper_cnr] [solidity] [touching] [grey_particle]
                                        [--seeds 0 1 … 19]
"""

from __future__ import annotations

import argparse

import numpy as np

from helpers.nanoct import segment as seg
from helpers.nanoct import voids as vd
from helpers.synthetic import ct_phantom


def powder(seed: int) -> dict:
    """96³ phantom at CNR 12, blur 0.5 voxel: segmentation, tiling and voids against label truth."""
    phantom = ct_phantom.make_powder_phantom((96, 96, 96), rng=seed)
    volume = ct_phantom.phantom_to_grey_8bit(phantom, rng=seed + 1, cnr=12, blur_sigma_vox=0.5).volume_8bit
    truth_labels = phantom.filled_labels()
    result = seg.segment_particles(volume, h=1.0)
    report = seg.match_labels(result.labels, truth_labels, iou_min=0.8)
    out = {
        "n_true": report.n_reference,
        "count_err": result.n_particles / report.n_reference - 1,
        "matched": report.matched_fraction,
        "over": report.over_rate,
        "under": report.under_rate,
        "sep_min": float(result.phase_fit.separations.min()),
    }
    # tiled vs untiled watershed (test_tiled_watershed_of_a_percolating_cluster_matches_the_untiled_one)
    threshold = seg.fit_three_phases(volume).threshold_nmc
    clusters, n, _ = seg.label_clusters(seg.nmc_mask(volume, threshold), min_voxels=8)
    untiled, _, big = seg.split_clusters(clusters, n)
    tiled, _, work = seg.split_clusters(clusters, n, max_box_voxels=40**3, tile_vox=48, halo_vox=12)
    same = seg.match_labels(tiled, untiled, iou_min=0.8)
    out["work_ratio"] = work / big
    out["tiled_same"] = same.matched / same.n_reference
    out["tiled_minus_untiled_vs_truth"] = (seg.match_labels(tiled, truth_labels).matched
                                           - seg.match_labels(untiled, truth_labels).matched)
    # voids (test_phantom_voids_against_truth)
    table, _ = vd.analyse_voids(volume, result.labels, result.phase_fit.void_threshold, 0.025,
                                with_solidity=False)
    truth = phantom.truth.set_index("label")
    partners = seg.best_partners(result.labels, truth_labels)
    table = table.merge(partners.rename(columns={"reference": "truth"}), on="label")
    truth_cols = truth[["void_fraction", "n_voids", "has_voids"]].rename(
        columns={"void_fraction": "void_fraction_truth", "n_voids": "n_voids_truth"})
    good = table[table.iou >= 0.8].join(truth_cols, on="truth")
    defective = good[good.has_voids]
    out["n_defective"] = len(defective)
    out["void_fraction_ok"] = float(np.mean(np.abs(defective.void_fraction
                                                   - defective.void_fraction_truth) < 0.01))
    out["void_count_ok"] = float(np.mean(defective.n_voids == defective.n_voids_truth))
    out["voids_in_sound"] = int(good[~good.has_voids].n_voids.sum())
    return out


def paper_cnr(seed: int) -> dict:
    """128³ phantom (d50 asked 1.2 µm) at the paper's CNR 2.3, TV-denoised, against label truth."""
    phantom = ct_phantom.make_powder_phantom((128, 128, 128), rng=seed, d50_volume_um=1.2)
    low = ct_phantom.phantom_to_grey_8bit(phantom, rng=seed + 1, cnr=2.3, blur_sigma_vox=0.5).volume_8bit
    nmc_true = phantom.phase == ct_phantom.NMC
    try:
        seg.fit_three_phases(low)
        raw_refused = False
    except ValueError:
        raw_refused = True
    nan = float("nan")
    try:
        result = seg.segment_particles(low, denoise="tv")
    except ValueError as err:  # the fit (or its separability check) refuses even after denoising
        print(f"paper_cnr seed {seed}: refused after denoising: {err}", flush=True)
        return {"raw_refused": raw_refused, "denoised_refused": True, "sep_min": nan, "nmc_err": nan,
                "n_true": len(phantom.truth), "n_found": nan, "matched": nan, "over": nan, "under": nan}
    report = seg.match_labels(result.labels, phantom.filled_labels(), iou_min=0.8)
    return {
        "raw_refused": raw_refused,
        "denoised_refused": False,
        "sep_min": float(result.phase_fit.separations.min()),
        "nmc_err": np.count_nonzero(result.denoised > result.threshold) / np.count_nonzero(nmc_true) - 1,
        "n_true": report.n_reference,
        "n_found": result.n_particles,
        "matched": report.matched_fraction,
        "over": report.over_rate,
        "under": report.under_rate,
    }


def _balls(shape, centres, radius):
    grid = np.indices(shape, dtype=np.float32)
    return np.any([sum((g - ci) ** 2 for g, ci in zip(grid, c, strict=True)) <= radius**2 for c in centres],
                  axis=0)


def solidity(seed: int, r: int = 8, d: int = 15) -> dict:
    """Ball, welded pair and L-shaped three-grain aggregate shifted by a random sub-voxel offset (seed 0:
    no shift, the test's case): solidity, and the pair's against the hull of balls of r + δ."""
    rng = np.random.default_rng(seed)
    c0 = np.array([15.0, 15.0, 15.0]) + (0 if seed == 0 else rng.uniform(-0.5, 0.5, 3))
    ball = _balls((30, 30, 30), [c0], r)
    pair = _balls((30, 30, 48), [c0, c0 + [0, 0, d]], r)
    ell = _balls((30, 48, 48), [c0, c0 + [0, 0, d], c0 + [0, d, d]], r)
    s_ball = seg.solidity(ball)
    r_hull = r * s_ball ** (-1 / 3)
    predicted = pair.sum() / (np.pi * r_hull**2 * d + 4 / 3 * np.pi * r_hull**3)
    s_pair = seg.solidity(pair)
    return {"ball": s_ball, "pair": s_pair, "pair_minus_predicted": s_pair - predicted,
            "ell": seg.solidity(ell)}


def _render(phase, rng, grey=(50.0, 110.0, 190.0), blur=0.7, noise=10.0):
    """8-bit grey volume of a phase map (0 air, 1 glue, 2 NMC) as the tests render it."""
    from scipy import ndimage as ndi

    volume = ndi.gaussian_filter(np.choose(phase, grey), blur) + rng.normal(0, noise, phase.shape)
    return np.clip(np.round(volume), 0, 255).astype(np.uint8)


def touching(seed: int) -> dict:
    """Six exact balls in two touching groups and one alone (tests' ``touching`` fixture), noise seed."""
    shape = (64, 96, 96)
    centres = [(32, 28, 26), (32, 28, 51), (32, 48, 39), (32, 70, 70), (32, 72, 47), (32, 22, 80)]
    radii = [13, 13, 12, 14, 11, 12]
    truth = np.zeros(shape, np.int32)
    grid = np.indices(shape, dtype=np.float32)
    for k, (c, r) in enumerate(zip(centres, radii, strict=True), start=1):
        truth[sum((g - ci) ** 2 for g, ci in zip(grid, c, strict=True)) <= r * r] = k
    phase = np.zeros(shape, np.uint8)
    phase[52:] = 1
    phase[truth > 0] = 2
    result = seg.segment_particles(_render(phase, np.random.default_rng(seed)))
    report = seg.match_labels(result.labels, truth, iou_min=0.8)
    return {"n_particles": result.n_particles, "matched": report.matched,
            "iou_min": float(report.iou_of_reference.min()), "over": report.over_segmented,
            "under": report.under_segmented, "n_clusters": result.n_clusters}


def grey_particle(seed: int) -> dict:
    """The voids test's particle (r = 22, voids r = 6, 5, 4) through the whole chain, noise seed."""
    shape = (56, 56, 56)
    voids_true = [((28, 28, 20), 6), ((28, 36, 34), 5), ((20, 22, 34), 4)]
    filled = _balls(shape, [(28, 28, 28)], 22)
    void = _balls(shape, [c for c, _ in voids_true[:1]], voids_true[0][1])
    for c, r in voids_true[1:]:
        void |= _balls(shape, [c], r)
    phase = np.zeros(shape, np.uint8)
    phase[44:] = 1
    phase[filled] = 2
    phase[void] = 0
    volume = _render(phase, np.random.default_rng(seed))
    result = seg.segment_particles(volume)
    fit = result.phase_fit
    truth_fraction = void.sum() / filled.sum()
    table, found = vd.analyse_voids(volume, result.labels, fit.void_threshold, voxel_size_um=0.025)
    found = found.sort_values("volume_um3", ascending=False)
    truth_d = np.array([2.0 * r for _, r in voids_true])
    out = {"n_particles": result.n_particles, "void_threshold_minus_120": fit.void_threshold - 120,
           "n_voids": int(table.n_voids.iloc[0]),
           "fraction_err": float(table.void_fraction.iloc[0] - truth_fraction)}
    if len(found) == len(truth_d):
        d_eq = found.d_eq_um.to_numpy() / 0.025
        d_lt = found.d_um.to_numpy() / 0.025
        out["d_eq_rel_err_max"] = float(np.max(np.abs(d_eq / truth_d - 1)))
        out["d_lt_excess_vox_max"] = float(np.max(np.abs(d_lt - truth_d) - 0.05 * truth_d))
    at_nmc = vd.analyse_voids(volume, result.labels, result.threshold, voxel_size_um=0.025)[0]
    out["fraction_bias_at_nmc"] = float(at_nmc.void_fraction.iloc[0] - truth_fraction)
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    cases = {"powder": powder, "paper_cnr": paper_cnr, "solidity": solidity, "touching": touching,
             "grey_particle": grey_particle}
    parser.add_argument("cases", nargs="*", default=list(cases), choices=list(cases))
    parser.add_argument("--seeds", nargs="+", type=int, default=list(range(20)))
    args = parser.parse_args(argv)
    for case in args.cases:
        rows = []
        for seed in args.seeds:
            row = cases[case](seed)
            rows.append(row)
            print(f"{case} seed {seed}: " + ", ".join(
                f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items()), flush=True)
        for key in rows[0]:
            values = np.array([r[key] for r in rows], float)
            values = values[np.isfinite(values)]  # a refused seed has no measures
            if values.size:
                print(f"{case} {key}: min {values.min():.4f}, max {values.max():.4f}, "
                      f"mean {values.mean():.4f}, std {values.std(ddof=1):.4f} ({values.size} seeds)",
                      flush=True)


if __name__ == "__main__":
    main()
