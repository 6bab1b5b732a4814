"""The three commands on a real Dask cluster (``dask scheduler`` + two ``dask worker`` on 127.0.0.1).

Each result is compared with the in-process run of the same command on the same input: the tasks run
the same functions on the same data, so the outputs agree to float32 rounding at most; the tolerance is
1e-6 of the largest value (the issue's bound; measured: identical). Every process started here is
stopped in the fixture's finaliser; every wait is bounded.
"""

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest

from helpers.cli import main as cli_main
from helpers.paths import data_sample

ROOT = Path(__file__).resolve().parents[1]
START_TIMEOUT_S = 90
RUN_TIMEOUT_S = 300


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_cluster(tmp_path, n_workers=2):
    """Scheduler + ``n_workers`` single-threaded workers (no nanny: a killed worker stays dead)."""
    from distributed import Client

    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "NUMBA_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    log = open(tmp_path / "dask.log", "w")  # noqa: SIM115 - closed in the finaliser
    procs = [subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
                               "--port", str(port), "--no-dashboard"], env=env, stdout=log, stderr=log)]
    for _ in range(n_workers):
        procs.append(subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_worker", address, "--host",
                                       "127.0.0.1", "--nthreads", "1", "--no-nanny", "--no-dashboard",
                                       "--memory-limit", "2GB", "--local-directory", str(tmp_path)],
                                      env=env, stdout=log, stderr=log))

    def stop():
        for p in reversed(procs):
            if p.poll() is None:
                p.terminate()
        for p in procs:
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=5)
        log.close()

    try:
        with Client(address, timeout=f"{START_TIMEOUT_S}s") as client:
            client.wait_for_workers(n_workers, timeout=START_TIMEOUT_S)
    except Exception:
        stop()
        raise
    return address, procs, stop


@pytest.fixture(scope="module")
def dask_cluster(tmp_path_factory):
    address, _, stop = _start_cluster(tmp_path_factory.mktemp("dask"))
    yield address
    stop()


@pytest.fixture(scope="module")
def ct_sample(tmp_path_factory):
    path = tmp_path_factory.mktemp("ct") / "scan.h5"
    shutil.copy(data_sample("ct_powder_holotomo.h5"), path)
    return path


def _close(a, b):
    a, b = np.asarray(a, float), np.asarray(b, float)
    scale = np.nanmax(np.abs(a)) if np.isfinite(a).any() else 1.0
    np.testing.assert_allclose(b, a, rtol=0, atol=1e-6 * scale, equal_nan=True)


def test_ct_reconstruct_on_dask_equals_in_process(dask_cluster, ct_sample, tmp_path):
    common = ["ct-reconstruct", str(ct_sample), "--slices", "10:19", "--slab", "2", "--quiet"]
    assert cli_main([*common, "--out", str(tmp_path / "local.h5")]) == 0
    out = tmp_path / "dask.h5"
    assert cli_main([*common, "--out", str(out), "--scheduler", dask_cluster]) == 0
    with h5py.File(tmp_path / "local.h5") as a, h5py.File(out) as b:
        _close(a["volume"][()], b["volume"][()])  # float32 volume: ≤ 1e-6 of its maximum
        _close(a["projections_retrieved"][()], b["projections_retrieved"][()])  # the phase pass's tasks
        assert b["projections_retrieved"].attrs["done"] == b["projections_retrieved"].shape[0]
        assert b["slice_done"][()].all()
        assert np.abs(a["volume_8bit"][()].astype(int) - b["volume_8bit"][()]).max() <= 1  # 8-bit: ±1 grey
    # the run is kept in OUT.partial until complete; its slab and projection files are joined and removed
    assert not list(tmp_path.glob("dask.h5.partial*")) and not list(tmp_path.glob("dask.h5.slabs"))


def test_ct_reconstruct_resumes_from_finished_slab_files(dask_cluster, ct_sample, tmp_path):
    """Slab files of a run interrupted before the join are joined, not recomputed."""
    from distributed import Client

    from helpers.nanoct import slab_tasks

    out = tmp_path / "r.h5"
    common = ["ct-reconstruct", str(ct_sample), "--out", str(out), "--slices", "10:16", "--slab", "2",
              "--quiet"]
    assert cli_main([*common, "--scheduler", dask_cluster]) == 0
    with h5py.File(out, "a") as f:  # pretend rows 12:16 were computed but never joined
        reference = f["volume"][()]
        f["slice_done"][2:] = False
        f["volume"][2:] = 0
        center, params = float(f.attrs["center_px"]), f.attrs["params"]
    slab_tasks.slab_dir(out).mkdir()
    tag = slab_tasks.slab_run_tag(params, center)
    slab_tasks.reconstruct_slab_task((12, 14), str(out), center, "none", "gridding", tag)
    with Client(dask_cluster, timeout="30s") as client:
        computed = slab_tasks.slab_pass(out, center, "none", "gridding", 2, 10, 16, client, quiet=True)
    assert computed == [(14, 16)]  # 12:14 was on disk, 10:12 already in the volume
    with h5py.File(out) as f:
        _close(reference, f["volume"][()])
        assert f["slice_done"][()].all()


def test_ct_analyse_on_dask_equals_in_process(dask_cluster, ct_sample, tmp_path):
    recon = tmp_path / "recon.h5"
    assert cli_main(["ct-reconstruct", str(ct_sample), "--out", str(recon), "--quiet"]) == 0
    # the sample's raw grey peaks overlap: a manual threshold between glue and NMC (as the error advises)
    common = ["ct-analyse", str(recon), "--dataset", "volume_8bit", "--threshold", "165"]
    assert cli_main([*common, "--out", str(tmp_path / "local.h5")]) == 0
    assert cli_main([*common, "--out", str(tmp_path / "dask.h5"), "--scheduler", dask_cluster]) == 0
    a = pd.read_csv(tmp_path / "local_morphology.csv")
    b = pd.read_csv(tmp_path / "dask_morphology.csv")
    assert len(a) == len(b) >= 20 and a.roundness.notna().sum() >= 3  # some particles above the size cut
    assert list(a.label) == list(b.label)
    for column in a.columns:
        _close(a[column].astype(float), b[column].astype(float))
    # clusters split and voids measured as tasks, labels numbered by the one writer: identical
    with h5py.File(tmp_path / "local.h5") as fa, h5py.File(tmp_path / "dask.h5") as fb:
        np.testing.assert_array_equal(fa["labels"][()], fb["labels"][()])
    for table in ("particles", "voids"):
        pd.testing.assert_frame_equal(pd.read_csv(tmp_path / f"local_{table}.csv"),
                                      pd.read_csv(tmp_path / f"dask_{table}.csv"))
    assert not (tmp_path / "dask.h5.parts").exists()  # scratch files removed


def test_cluster_split_and_voids_as_tasks_equal_in_process(dask_cluster, ct_sample, tmp_path):
    """Tasks + one writer give the in-process labels and tables, also with tiled (writer-side) clusters."""
    import dataclasses

    from distributed import Client

    from helpers.nanoct import segment as seg
    from helpers.nanoct import segment_tasks as st
    from helpers.nanoct import void_significance as vs
    from helpers.nanoct import voids as vd
    from helpers.nanoct.volume_io import open_volume

    recon = tmp_path / "recon.h5"
    assert cli_main(["ct-reconstruct", str(ct_sample), "--out", str(recon), "--quiet"]) == 0
    volume = np.asarray(open_volume(recon, "volume_8bit"))
    # boxes above 2000 voxels are cut in 12-voxel tiles by the writer while the others run as tasks
    options = dict(threshold=165, max_box_voxels=2000, tile_vox=12, halo_vox=4)
    local = seg.segment_particles(volume, **options)
    with Client(dask_cluster, timeout="30s") as client:
        # the writer's label volume memory-mapped (scratch_dir): the same labels as in RAM
        dask = st.segment_particles_on(client, volume, tmp_path / "scratch", quiet=True,
                                       scratch_dir=tmp_path / "mapped", **options)
        # void threshold 180 (above the NMC threshold 165): the darker inclusions count as voids
        pa, va = vd.analyse_voids(volume, local.labels, 180, 0.025, boxes=local.boxes)
        pb, vb = st.analyse_voids_on(client, recon, "volume_8bit", local.labels, 180, 0.025,
                                     tmp_path / "scratch", boxes=local.boxes, quiet=True)
        # the significance test: σ of ball means measured once in the air (below the NMC threshold, far
        # from particles), every particle's crop padded by the largest ball, here and in the tasks
        # (k = 1 instead of 3.7 so that this sample's small particles hold voids to compare)
        noise = dataclasses.replace(vs.air_noise(volume, local.labels, max_grey=165.0), k_sigma=1.0)
        sa, wa = vd.analyse_voids(volume, local.labels, 180, 0.025, boxes=local.boxes, significance=noise)
        sb, wb = st.analyse_voids_on(client, recon, "volume_8bit", local.labels, 180, 0.025,
                                     tmp_path / "scratch", boxes=local.boxes, quiet=True, significance=noise)
    assert local.n_particles >= 50 and local.largest_box_voxels < local.labels.size
    np.testing.assert_array_equal(local.labels, dask.labels)
    np.testing.assert_array_equal(local.cluster_of, dask.cluster_of)
    assert local.largest_box_voxels == dask.largest_box_voxels
    assert len(va) >= 5  # voids measured, not only empty rows
    pd.testing.assert_frame_equal(pa, pb)
    pd.testing.assert_frame_equal(va, vb)
    assert max(noise.radii) >= 2 and sa.n_voids.sum() >= 5  # some air, some voids
    pd.testing.assert_frame_equal(sa, sb)
    pd.testing.assert_frame_equal(wa, wb)
    assert not (tmp_path / "scratch").exists()


def _forward_model_scan(path, seed):
    from helpers.synthetic import sxdm_model as SM
    from helpers.synthetic import sxdm_scan as SS

    particle = SM.fig1_particle(np.random.default_rng(1))
    settings = SS.ScanSettings(n_fast=6, n_slow=6, start_um=(0.4, 0.4), step_um=(0.6, 0.6),
                               drift_um_per_eta=0.0, position_jitter_um=0.0)
    sim = SS.simulate_scan(particle, settings, np.random.default_rng(seed))
    return SS.write_simulation(sim, path, external_frames=False)


def test_sxdm_maps_on_dask_one_task_per_scan_and_a_failure_named(dask_cluster, tmp_path, capsys):
    from helpers.sxdm import maps as M

    scans = [_forward_model_scan(tmp_path / f"p{k}.h5", seed=k) for k in (2, 3)]
    broken = tmp_path / "broken.h5"
    broken.write_text("not an HDF5 file")
    out_dir = tmp_path / "maps"
    rc = cli_main(["sxdm-maps", str(scans[0]), str(broken), str(scans[1]), "--out-dir", str(out_dir),
                   "--method", "com", "--quiet", "--scheduler", dask_cluster])
    err = capsys.readouterr().err
    assert rc == 1 and "broken.h5" in err and "1 of 3 scans failed" in err
    assert sorted(p.name for p in out_dir.iterdir()) == ["p2_maps.h5", "p3_maps.h5"]  # nothing for broken
    for scan in scans:
        single = tmp_path / f"{scan.stem}_single.h5"
        assert cli_main(["sxdm-maps", str(scan), "--out", str(single), "--method", "com", "--quiet"]) == 0
        a, b = M.read_maps(single), M.read_maps(out_dir / f"{scan.stem}_maps.h5")
        for field in ("intensity", "q", "d_spacing", "strain", "tilt_deg", "sigma_q"):
            _close(getattr(a, field), getattr(b, field))
        np.testing.assert_array_equal(a.mask, b.mask)
        np.testing.assert_array_equal(a.flags, b.flags)


def test_a_worker_killed_mid_run_is_retried_or_fails_clearly(ct_sample, tmp_path):
    """Kill one of two workers while slabs are running: the run completes on the other (dask re-runs the
    lost task) and equals the in-process volume; if it fails, it says so and finished slabs are kept."""
    address, procs, stop = _start_cluster(tmp_path)
    try:
        out = tmp_path / "killed.h5"
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        cmd = [sys.executable, "-m", "helpers.cli", "ct-reconstruct", str(ct_sample), "--out", str(out),
               "--slices", "0:24", "--slab", "1", "--quiet", "--scheduler", address]
        run = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        slabs = Path(str(out) + ".partial.slabs")  # ct-reconstruct works in OUT.partial until complete
        deadline = time.monotonic() + RUN_TIMEOUT_S
        while time.monotonic() < deadline and run.poll() is None:
            if slabs.exists() and any(p.suffix == ".h5" for p in slabs.iterdir()):
                break
            time.sleep(0.05)
        killed_while_running = run.poll() is None
        procs[1].send_signal(signal.SIGKILL)
        stdout, stderr = run.communicate(timeout=RUN_TIMEOUT_S)
        print(f"run exit code {run.returncode} after killing a worker; stderr: {stderr[-300:]}")
        if run.returncode == 0:
            assert cli_main(["ct-reconstruct", str(ct_sample), "--out", str(tmp_path / "ref.h5"),
                             "--slices", "0:24", "--slab", "1", "--quiet"]) == 0
            with h5py.File(tmp_path / "ref.h5") as a, h5py.File(out) as b:
                _close(a["volume"][()], b["volume"][()])
                assert b["slice_done"][()].all()
        else:
            assert "slab" in stderr and "failed" in stderr, stderr
            assert not out.exists()  # nothing that looks complete
            with h5py.File(Path(str(out) + ".partial")) as b:
                assert b["slice_done"][()].any() or any(slabs.glob("*.h5"))  # finished work kept
        assert killed_while_running, "the run ended before a worker could be killed; make it longer"
    finally:
        stop()
