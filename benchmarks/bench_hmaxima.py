"""Split stage of ``ct-analyse`` with scikit-image's ``h_maxima`` against :mod:`helpers.nanoct.hmaxima`.

On a rendered paper-like volume (``bench_analyse_scale.py render``): the NMC mask and cluster labels are
computed once, then :func:`helpers.nanoct.particles.split_clusters` runs twice in the same process, once
with each h-maxima (old first, new second, then old again to see the drift of the machine's load);
the particle labels are compared voxel by voxel and the h-maxima calls alone are timed per box voxel.
Optionally (``--sitk PATH``, a folder where SimpleITK is installed) SimpleITK's
``ReconstructionByDilation`` with scikit-image's shift is timed on the same crops.

    PYTHONPATH=$PWD python benchmarks/bench_hmaxima.py /path/cut.h5 [--sitk DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("volume", help="HDF5 file with a uint8 dataset /volume")
    parser.add_argument("--threshold", type=float, default=None, help="NMC grey threshold (default: fitted)")
    parser.add_argument("--sitk", default=None, help="folder holding SimpleITK, to time it as a third method")
    args = parser.parse_args(argv)

    import h5py
    from skimage.morphology import h_maxima as skimage_h_maxima

    from helpers.nanoct import hmaxima, particles

    with h5py.File(args.volume, "r") as f:
        volume = f["volume"][()]
    threshold = args.threshold
    if threshold is None:
        threshold = particles.fitted_threshold(volume)[0]
    mask = particles.nmc_mask(volume, threshold)
    clusters, n_clusters, _ = particles.label_clusters(mask, 26, 8)
    del mask

    methods = {"skimage": skimage_h_maxima, "numba": hmaxima.h_maxima}
    if args.sitk:
        sys.path.insert(0, args.sitk)
        import SimpleITK as sitk

        def sitk_h_maxima(image, h):
            resolution = 2 * np.finfo(image.dtype).resolution * np.abs(image)
            shifted = (image - h - resolution).astype(image.dtype)
            rec = sitk.GetArrayFromImage(sitk.ReconstructionByDilation(
                sitk.GetImageFromArray(shifted), sitk.GetImageFromArray(image), True))
            return ((image - rec) >= h).astype(np.uint8)

        methods["sitk"] = sitk_h_maxima
    hmaxima.h_maxima(np.random.default_rng(0).random((4, 5, 6)).astype(np.float32), 0.1)  # compile / load
    original = hmaxima.h_maxima
    spent = {}

    def timed(name):
        def call(image, h):
            start = time.perf_counter()
            result = methods[name](image, h)
            spent[name][0] += time.perf_counter() - start
            spent[name][1] += image.size
            return result
        return call

    runs, labels_of = {}, {}
    order = ["skimage", "numba"] + (["sitk"] if args.sitk else []) + ["skimage"]
    for i, name in enumerate(order):
        spent[name] = [0.0, 0]
        hmaxima.h_maxima = timed(name)
        try:
            start = time.perf_counter()
            labels, cluster_of, largest = particles.split_clusters(clusters.copy(), n_clusters)
            wall = time.perf_counter() - start
        finally:
            hmaxima.h_maxima = original
        key = f"{name}#{i}"
        labels_of[key] = labels
        runs[key] = {"split_s": round(wall, 2), "h_maxima_s": round(spent[name][0], 2),
                     "box_voxels": spent[name][1],
                     "h_maxima_us_per_box_voxel": round(1e6 * spent[name][0] / max(spent[name][1], 1), 4),
                     "n_particles": int(labels.max()), "load_avg": os.getloadavg()[0]}
    reference = labels_of["skimage#0"]
    for key in runs:
        runs[key]["labels_voxels_differing_from_skimage"] = int(np.count_nonzero(labels_of[key] != reference))
    result = {"volume": str(args.volume), "shape": list(volume.shape), "threshold": float(threshold),
              "n_clusters": int(n_clusters), "largest_box_voxels": int(largest), "runs": runs}
    print(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
