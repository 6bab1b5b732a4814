"""Builder of the bundled nano-CT sample (``make data``): a 4-distance holotomography scan with truth.

Files written (deterministic, seeded):

- ``ct_powder_holotomo.h5``: NXtomo, entries ``entry0000``…``entry0003`` (one per distance), each with
  darks, flats and 180 projections over 360° of a 24 × 128 × 128 powder phantom at 25 nm voxels,
  29.6 keV, effective distances 0.10/0.15/0.25/0.40 mm, Poisson noise at the dose that gives the
  paper's reconstructed CNR ≈ 2.3 (``ct_projections.PAPER_CNR_FLAT_COUNTS`` = 150 counts per pixel
  and projection), a non-uniform beam, ring-making gain errors and sub-pixel shifts between distances.
- ``ct_powder_truth.h5``: the truth of that scan: ``phase`` (uint8, 0 air/1 glue/2 NMC), ``labels``
  (int32), ``delta`` and ``beta`` (float32, cut to the pillar cylinder as simulated), the per-particle
  table as columns under ``particles/``, the distance shifts and the refractive indices as attributes.

- ``ct_powder3d_scan.h5`` + ``ct_powder3d_truth.h5``: the 3-D sample that notebooks 06–08 reconstruct
  and analyse end to end: one distance (0.10 mm), 180 projections over 360° of a 128³ powder
  (volume-weighted median particle 0.8 µm = 32 voxels), same dose and detector. Its truth holds
  ``phase``, ``labels`` (solid NMC), ``void_owner`` (label of the particle around each void voxel),
  ``particles/`` (incl. the drawn semi-axes ``design_*_vox``) and the refractive indices.

Distances are scaled down from ID16B's (millimetres) with the field of view: the Paganin low-pass width
√(πλz·δ/β) must stay well below the 128-pixel image (43 px at 0.1 mm), as it does at 2560 pixels and
millimetre distances.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from helpers.synthetic import ct_phantom, ct_projections

SAMPLE_SHAPE = (24, 128, 128)
SAMPLE_SEED = 2
SAMPLE_ANGLES = 180
SAMPLE_DISTANCES_M = (1.0e-4, 1.5e-4, 2.5e-4, 4.0e-4)
SCAN_FILE = "ct_powder_holotomo.h5"
TRUTH_FILE = "ct_powder_truth.h5"
SAMPLE3D_SHAPE = (128, 128, 128)
SAMPLE3D_SEED = 3
SAMPLE3D_D50_UM = 0.8
SAMPLE3D_DISTANCE_M = 1.0e-4
SCAN3D_FILE = "ct_powder3d_scan.h5"
TRUTH3D_FILE = "ct_powder3d_truth.h5"


def make_sample_scan(
    shape=SAMPLE_SHAPE,
    n_angles=SAMPLE_ANGLES,
    distances_m=SAMPLE_DISTANCES_M,
    seed=SAMPLE_SEED,
    d50_volume_um=None,
    flat_counts=None,
):
    """Phantom and simulated scan of the bundled sample (also usable at other sizes and doses)."""
    phantom = ct_phantom.make_powder_phantom(shape, rng=seed, d50_volume_um=d50_volume_um)
    angles = np.linspace(0.0, 2.0 * np.pi, n_angles, endpoint=False)
    scan = ct_projections.simulate_scan(
        phantom.delta_volume(),
        phantom.beta_volume(),
        angles,
        distances_m=distances_m,
        rng=seed + 1000,
        flat_counts=flat_counts,
    )
    return phantom, scan


def write_truth(path: Path, phantom, scan, shape, with_delta: bool = True) -> Path:
    """Truth file of a simulated scan (see the module docstring), cut to the pillar as simulated."""
    import h5py

    inside = ct_projections.pillar_mask(*shape[1:])[None]
    with h5py.File(path, "w") as f:
        f.create_dataset(
            "phase", data=np.where(inside, phantom.phase, 0).astype(np.uint8), compression="gzip"
        )
        f.create_dataset(
            "labels", data=np.where(inside, phantom.labels, 0).astype(np.int32), compression="gzip"
        )
        f.create_dataset(
            "void_owner", data=np.where(inside, phantom.void_owner, 0).astype(np.int32), compression="gzip"
        )
        if with_delta:
            f.create_dataset("delta", data=np.where(inside, phantom.delta_volume(), 0), compression="gzip")
            f.create_dataset("beta", data=np.where(inside, phantom.beta_volume(), 0), compression="gzip")
        grp = f.create_group("particles")
        for column in phantom.truth.columns:
            grp[column] = phantom.truth[column].to_numpy()
        f.attrs["voxel_size_m"] = phantom.voxel_size_um * 1e-6
        f.attrs["distance_shifts_px"] = np.asarray(scan.shifts_px, dtype=float)
        f.attrs["flat_counts"] = scan.params["flat_counts"]
        for name in phantom.refractive.index:
            f.attrs[f"delta_{name}"] = phantom.refractive.loc[name, "delta"]
            f.attrs[f"beta_{name}"] = phantom.refractive.loc[name, "beta"]
        f.attrs["made_by"] = "helpers.synthetic.ct_samples (seeded)"
    return Path(path)


def write_ct3d_sample(out_folder: Path) -> list[Path]:
    """Write the single-distance 3-D scan of notebooks 06–08 and its truth; returns the two paths."""
    out_folder = Path(out_folder)
    phantom, scan = make_sample_scan(
        SAMPLE3D_SHAPE, SAMPLE_ANGLES, (SAMPLE3D_DISTANCE_M,), SAMPLE3D_SEED, d50_volume_um=SAMPLE3D_D50_UM
    )
    scan_path = ct_projections.write_nxtomo(out_folder / SCAN3D_FILE, scan)
    truth_path = write_truth(out_folder / TRUTH3D_FILE, phantom, scan, SAMPLE3D_SHAPE, with_delta=False)
    return [scan_path, truth_path]


def write_ct_sample(out_folder: Path) -> list[Path]:
    """Write the scan and its truth into ``out_folder``; returns the two paths."""
    out_folder = Path(out_folder)
    phantom, scan = make_sample_scan()
    scan_path = ct_projections.write_nxtomo(out_folder / SCAN_FILE, scan)
    truth_path = write_truth(out_folder / TRUTH_FILE, phantom, scan, SAMPLE_SHAPE)
    return [scan_path, truth_path]
