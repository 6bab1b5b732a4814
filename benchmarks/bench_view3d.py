"""Which Jupyter 3-D library for the particle views: k3d or PyVista? Measured, side by side, in one run.

For a 256³ powder phantom (``helpers.synthetic.ct_phantom``, the notebooks' particles at twice the
box), both libraries get the same job: show every particle as a surface coloured by a per-particle
value. Measured:

- install size: the files of each library and of the packages it alone brings (installed wheels);
- speed: k3d = marching cubes per particle (``helpers.view3d.label_surfaces``) + building the widget +
  serialising its state (what the kernel sends to the browser); PyVista = ``contour_labels`` on the
  volume + an off-screen render to PNG (what its ``static`` Jupyter backend stores);
- nbval behaviour: a two-cell notebook run by nbclient (as nbval does): which outputs it stores,
  whether anything goes to stderr, whether it runs at all without a display.

Usage: ``python benchmarks/bench_view3d.py``; writes ``benchmarks/out/view3d.json`` and
``benchmarks/RESULTS_view3d.md``. The machine is shared: times are indicative, their ratio is the number.
"""

from __future__ import annotations

import importlib.metadata as md
import json
import sys
import time
from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parent / "out"
RESULTS = Path(__file__).resolve().parent / "RESULTS_view3d.md"
SHAPE = (256, 256, 256)

# packages each library brings that the workbook does not otherwise need
K3D_PACKAGES = ["k3d", "anywidget", "traittypes", "msgpack"]
PYVISTA_PACKAGES = ["pyvista", "vtk", "pooch", "scooby", "pyvista-validation"]
#: PyVista's interactive Jupyter backend needs trame (trame, trame-vtk, trame-vuetify and 12 more:
#: trame-client/-common/-server, wslink, aiohttp and its 7 deps, more-itertools), not installed here:
#: `pip download --no-deps` of the 15 wheels on 2026-12-03 gave 11.5 MB, 36.1 MB unpacked
TRAME_UNPACKED_MB = 36.1


def installed_mb(names):
    total = 0
    for name in names:
        try:
            dist = md.distribution(name)
        except md.PackageNotFoundError:
            continue
        total += sum((dist.locate_file(f).stat().st_size for f in dist.files or []
                      if dist.locate_file(f).exists()), 0)
    return total / 1e6


def time_k3d(labels, values):
    import k3d

    from helpers import view3d

    start = time.perf_counter()
    surfaces = view3d.label_surfaces(labels, 0.025, step=2)
    meshed = time.perf_counter()
    v, f, a = view3d.merged_mesh(surfaces, values)
    plot = k3d.plot()
    plot += k3d.mesh(v, f, attribute=a, color_map=k3d.colormaps.matplotlib_color_maps.Viridis)
    plot.objects[0].get_state()  # serialisation, as when the widget is sent to the browser
    sent_bytes = v.nbytes + f.nbytes + a.nbytes  # the float32/uint32 arrays (k3d may compress them)
    done = time.perf_counter()
    return {"mesh_s": meshed - start, "widget_s": done - meshed, "total_s": done - start,
            "triangles": int(len(f)), "sent_MB": sent_bytes / 1e6}


def time_pyvista(labels):
    try:
        import pyvista as pv
    except ImportError as err:
        return {"error": str(err)}
    start = time.perf_counter()
    grid = pv.wrap(labels.astype(np.int32))
    try:
        surface = grid.contour_labels() if hasattr(grid, "contour_labels") else grid.contour_labeled()
    except Exception as err:  # API differences between versions
        return {"error": f"contour_labels: {err}"}
    meshed = time.perf_counter()
    result = {"mesh_s": meshed - start, "triangles": int(surface.n_cells)}
    try:
        plotter = pv.Plotter(off_screen=True, window_size=(600, 500))
        plotter.add_mesh(surface)
        plotter.screenshot(str(OUT / "view3d_pyvista.png"))
        plotter.close()
        result["render_s"] = time.perf_counter() - meshed
    except Exception as err:
        result["render_error"] = f"{type(err).__name__}: {err}"[:300]
    result["total_s"] = time.perf_counter() - start
    return result


NB_CELLS = {
    "k3d": ["import numpy as np, k3d",
            "p = k3d.plot(); p += k3d.mesh(np.random.rand(30, 3).astype('f4'), "
            "np.arange(30, dtype='u4').reshape(10, 3)); p"],
    "pyvista": ["import pyvista as pv",
                "pv.Sphere().plot(jupyter_backend='static')"],
    "pyvista-trame": ["import pyvista as pv",
                      "pv.Sphere().plot(jupyter_backend='trame')"],
}


def nbval_behaviour():
    import nbclient
    import nbformat

    found = {}
    for name, cells in NB_CELLS.items():
        nb = nbformat.v4.new_notebook()
        nb.cells = [nbformat.v4.new_code_cell(c) for c in cells]
        try:
            nbclient.NotebookClient(nb, kernel_name="python3", timeout=120).execute()
            outputs = [o for c in nb.cells for o in c.outputs]
            found[name] = {"runs": True, "outputs": sorted({k for o in outputs for k in o.get("data", {})}),
                           "stderr": any(o.get("name") == "stderr" for o in outputs)}
        except Exception as err:
            found[name] = {"runs": False, "error": f"{type(err).__name__}: {str(err).splitlines()[-1][:200]}"}
    return found


def main():
    from helpers.synthetic import ct_phantom

    OUT.mkdir(exist_ok=True)
    start = time.perf_counter()
    phantom = ct_phantom.make_powder_phantom(SHAPE, voxel_size_um=0.025, rng=0)
    labels = phantom.labels
    print(f"phantom {SHAPE}: {labels.max()} particles, {time.perf_counter() - start:.0f} s", flush=True)
    values = {int(k): float(k) for k in np.unique(labels) if k}
    result = {
        "shape": SHAPE, "n_particles": int(labels.max()), "python": sys.version.split()[0],
        "install_MB": {"k3d": installed_mb(K3D_PACKAGES), "pyvista": installed_mb(PYVISTA_PACKAGES),
                       "pyvista_trame_extra": TRAME_UNPACKED_MB},
        "versions": {n: md.version(n) for n in ("k3d", "pyvista", "vtk") if _has(n)},
        "k3d": time_k3d(labels, values),
        "pyvista": time_pyvista(labels),
        "nbval": nbval_behaviour(),
    }
    (OUT / "view3d.json").write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))


def _has(name):
    try:
        md.version(name)
        return True
    except md.PackageNotFoundError:
        return False


if __name__ == "__main__":
    main()
