"""Which volumes does the automatic NMC threshold accept, and how good is the mask it then gives?

Cases (128³ phantom of the bundled ``ct_powder3d`` sample, three noise seeds each): the chain at the
paper's dose (150 counts, design input) and at 20 000 counts without ring-making gain errors, and the
idealised grey phantom at CNR 12 and 2.3; each raw and after the median and NLM filters. For every
volume: the two/three-phase fit of ``segment.nmc_threshold_auto`` (or its refusal), what the fitted
mixture predicts for its threshold (``separability.threshold_quality``: IoU, volume error, misfit) and
what the truth measures (mask IoU, NMC volume error). Writes ``benchmarks/out/ct_separability.json``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from helpers.nanoct import chain, separability
from helpers.nanoct import segment as seg
from helpers.nanoct.denoise import denoise_volume
from helpers.synthetic import ct_phantom, ct_projections, ct_samples

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_ct_particle_scale  # noqa: E402,F401  (memoised projections)
from bench_ct_chain import truth_of  # noqa: E402

OUT = Path(__file__).resolve().parent / "out"
SEEDS = (11, 12, 13)


def volumes(phantom):
    angles = np.linspace(0, 2 * np.pi, ct_samples.SAMPLE_ANGLES, endpoint=False)
    for seed in SEEDS:
        for label, kw in (("chain, paper dose", {}),
                          ("chain, high dose", dict(flat_counts=20000, ring_sigma=0.0, n_bad_columns=0))):
            scan = ct_projections.simulate_scan(phantom.delta_volume(), phantom.beta_volume(), angles,
                                                distances_m=(ct_samples.SAMPLE3D_DISTANCE_M,), rng=seed, **kw)
            tag = "p" if label.endswith("paper dose") else "h"
            path = ct_projections.write_nxtomo(OUT / f"sep_{tag}_{seed}.h5", scan)
            yield label, seed, chain.reconstructed_volume(path, cache_folder=OUT / "chain_cache").volume_8bit
        pillar = ct_projections.pillar_mask(128, 128)[None]
        for c in (12.0, 2.3):
            g = ct_phantom.phantom_to_grey_8bit(phantom, rng=seed, cnr=c, blur_sigma_vox=0.5)
            cut = np.where(pillar, g.volume_8bit, g.volume_8bit.min()).astype(np.uint8)
            yield f"idealised CNR {c:g}", seed, cut


def main():
    OUT.mkdir(exist_ok=True)
    phantom = ct_phantom.make_powder_phantom(ct_samples.SAMPLE3D_SHAPE, rng=ct_samples.SAMPLE3D_SEED,
                                             d50_volume_um=ct_samples.SAMPLE3D_D50_UM)
    nmc_true = truth_of(phantom)["phase"] == ct_phantom.NMC
    rows = []
    for label, seed, v8 in volumes(phantom):
        for filt in ("none", "median", "nlm"):
            v = v8 if filt == "none" else denoise_volume(v8, filt)
            counts = seg.grey_histogram(v)
            row = {"volume": label, "seed": seed, "filter": filt}
            try:
                a = seg.nmc_threshold_auto(counts, min_separation=0.5)
                q = separability.threshold_quality(counts, a.means, a.sigmas, a.weights, a.threshold)
                m = v > a.threshold
                row.update(phases=len(a.phases), D=a.separation, threshold=a.threshold, pred_iou=q.iou,
                           pred_volume_error=q.volume_error, misfit=q.misfit,
                           iou=float((m & nmc_true).sum() / (m | nmc_true).sum()),
                           volume_error=float(m.sum() / nmc_true.sum() - 1))
            except ValueError as err:
                row["refused"] = str(err)[:120]
            rows.append(row)
            print(json.dumps({k: (round(x, 3) if isinstance(x, float) else x) for k, x in row.items()}),
                  flush=True)
    (OUT / "ct_separability.json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
