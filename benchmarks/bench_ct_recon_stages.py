"""Where ``ct-reconstruct``'s time goes: seconds per stage, for two versions of ``helpers`` in one run.

Each version (``--version LABEL=DIR``, ``DIR`` holding a ``helpers`` package, e.g. an exported older
commit: ``git archive main helpers | tar -x -C /tmp/old``) is timed in its own subprocess, the versions
alternating ``--repeat`` times (best kept), on the same scan and the same retrieved projections:

- phase pass, per projection (all detector rows of ``--scan``): HDF5 read + gzip decompression of a
  batch of 16, flat/dark correction, Paganin retrieval;
- centre search (``recon.find_center``'s opposite-projection match), per trial shift of one row (the
  command tries 1 + n/2 shifts on 8–16 rows);
- slab pass, per slice (rows of ``--retrieved``, an existing ``ct-reconstruct`` output): reading the
  sinogram, ring removal ``none`` (a copy) and ``sorting``, the ramp filter, the gridding back-projection
  (finufft; plan built once per run, timed apart), the 8-bit conversion, the write of one slice.

Usage: ``python benchmarks/bench_ct_recon_stages.py --scan S.h5 --retrieved R.h5 --version old=/tmp/old
--version new=.`` Prints a Markdown table (the machine is shared: report ``uptime`` beside it).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile

STAGE_CODE = r"""
import json, sys, time, tempfile
import numpy as np
sys.path.insert(0, sys.argv[1])
import h5py, hdf5plugin  # noqa: F401
from helpers.nanoct import grey, io, phase, recon, rings
scan_path, retrieved = sys.argv[2], sys.argv[3]
res = {}
def timed(name, fn, per=1):
    t = time.perf_counter(); out = fn(); res[name] = (time.perf_counter() - t) / per; return out
scan = io.read_nxtomo(scan_path, io.list_nxtomo_entries(scan_path)[0])
fl, dk = scan.flat_mean(), scan.dark_mean()
raw = timed("read + gunzip (per projection)", lambda: scan.read_frames(100, 116), 16)
tr = timed("flat/dark (per projection)", lambda: io.flat_dark_correct(raw, fl, dk), 16)
timed("Paganin (per projection)", lambda: phase.paganin(tr, 87.0, scan.energy_kev, scan.distance_m,
                                                         scan.pixel_size_m), 16)
with h5py.File(retrieved) as f:
    n_proj, n_rows, n = f["projections_retrieved"].shape
    angles = f["angles_rad"][()]
    center = float(f.attrs["center_px"])
    sino = timed("read sinograms (per slice, slab of 8)", lambda: f["projections_retrieved"][:, 0:8, :], 8)
s = sino[:, 3, :].astype(np.float64)
s -= s.mean(axis=0, keepdims=True)
half = len(angles) // 2
shifts = (2.0 * ((n - 1) / 2.0 + np.arange(-n / 4, n / 4 + 0.25, 0.5)) - (n - 1))[::16]
timed("centre search (per trial shift, one row)",
      lambda: recon._opposite_mismatch(s[:half], s[half:][:, ::-1], shifts), len(shifts))
one = sino[:, 3, :]
timed("rings none (per slice)", lambda: rings.remove_rings(one, "none"))
ringed = timed("rings sorting (per slice)", lambda: rings.remove_rings(one, "sorting"))
timed("ramp filter (per slice)", lambda: recon.ramp_filter(one))
recon._gridding_plan.cache_clear()
timed("gridding plan (once per run)", lambda: recon.reconstruct(one, angles, center, "gridding"))
img = timed("back-projection incl. ramp (per slice)",
            lambda: recon.reconstruct(sino[:, 4, :], angles, center, "gridding"))
window = grey.percentile_window(img.ravel())
timed("8-bit conversion (per slice)", lambda: window.to_8bit(img[None]))
with tempfile.TemporaryDirectory() as tmp, h5py.File(tmp + "/v.h5", "w") as g:
    ds = g.create_dataset("volume", (8, n, n), "f4", chunks=(1, n, n))
    def write():
        for k in range(8):
            ds[k] = img
        g.flush()
    timed("write (per slice)", write, 8)
print(json.dumps(res))
"""


def measure(root: str, scan: str, retrieved: str) -> dict:
    out = subprocess.run([sys.executable, "-c", STAGE_CODE, root, scan, retrieved], capture_output=True,
                         text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scan", required=True, help="NXtomo scan (read only)")
    parser.add_argument("--retrieved", required=True, help="a ct-reconstruct output of that scan (read only)")
    parser.add_argument("--version", action="append", required=True, help="LABEL=DIR holding helpers/")
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args(argv)
    versions = dict(v.split("=", 1) for v in args.version)
    best: dict[str, dict] = {}
    with tempfile.TemporaryDirectory():
        for _ in range(args.repeat):
            for label, root in versions.items():
                res = measure(root, args.scan, args.retrieved)
                best[label] = {k: min(v, best.get(label, {}).get(k, v)) for k, v in res.items()}
    labels = list(versions)
    print("| stage | " + " | ".join(f"{lab} (s)" for lab in labels) + " | ratio |")
    print("|---|" + "---|" * (len(labels) + 1))
    for stage in best[labels[0]]:
        values = [best[lab][stage] for lab in labels]
        ratio = values[0] / values[-1] if values[-1] > 0 else float("nan")
        print(f"| {stage} | " + " | ".join(f"{v:.4f}" for v in values) + f" | {ratio:.2f}× |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
