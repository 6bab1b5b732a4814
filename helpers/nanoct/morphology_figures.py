"""Figures and tables of notebook 07 (Fig. 5B, 5C, S7, Table S1), drawn from computed morphology.

Pure functions ``plot_x(ax, data, ...)``; the notebook's widget wraps the same functions. Matplotlib is
imported inside the functions (no import-time side effects).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from helpers.nanoct import shapes
from helpers.nanoct.morphology import inscribed_radius, measure_particle
from helpers.nanoct.roundness import smoothed_surface, wadell_roundness

__all__ = ["PAPER_MEDIANS", "PAPER_REFERENCE_2D", "PAPER_TABLE_S1", "match_paper_examples",
           "plot_ellipticity", "plot_ellipticity_3d", "plot_s7_schematic", "plot_sphericity_roundness",
           "reference_shape_table", "render_particle", "render_population"]

#: Table S1 of the paper (particle, equivalent diameter µm, ellipticities, S, R)
PAPER_TABLE_S1 = pd.DataFrame(
    [["#6", 3.26, 0.49, 0.36, 0.73, 0.52, 0.63], ["#2", 7.9, 0.84, 0.30, 0.35, 0.29, 0.80],
     ["#1", 4.26, 0.69, 0.63, 0.91, 0.54, 0.55], ["#7", 1.56, 0.65, 0.37, 0.57, 0.61, 0.85]],
    columns=["particle", "d_eq_um", "e_yx", "e_zx", "e_zy", "sphericity", "roundness"],
)
#: the paper's population medians (Table S1; the 1.9 µm is volume-weighted)
PAPER_MEDIANS = {"d_eq_um": 1.9, "e_yx": 0.80, "e_zx": 0.57, "e_zy": 0.70, "sphericity": 0.67,
                 "roundness": 0.73}
#: reference values the paper quotes, which are 2-D (silhouette) values (WORKBOOK §4)
PAPER_REFERENCE_2D = pd.DataFrame(
    [["cube (paper)", 0.71, 0.53, "1/√2 = square silhouette; 0.53 ≈ π/6 = 36πV²/A³ of a cube"],
     ["triangle (paper)", 0.54, np.nan, "a 2-D shape"]],
    columns=["shape", "sphericity", "roundness", "what it is"],
)

_REFERENCE_SHAPES = [
    ("sphere", "sphere", lambda h: {"r": h}, lambda h, rot: shapes.sphere(h)),
    ("cube", "cube", lambda h: {"h": h}, lambda h, rot: shapes.cube(h, rot)),
    ("cylinder H = D", "cylinder", lambda h: {"r": h, "h": h}, lambda h, rot: shapes.cylinder(h, h, rot)),
    ("rounded cube ρ = h/2", "rounded_cube", lambda h: {"h": h, "rho": h / 2},
     lambda h, rot: shapes.rounded_cube(h, h / 2, rot)),
    ("ellipsoid 1 : 0.8 : 0.56", "ellipsoid", lambda h: {"a": 1.5 * h, "b": 1.2 * h, "c": 0.84 * h},
     lambda h, rot: shapes.ellipsoid(1.5 * h, 1.2 * h, 0.84 * h, rot)),
]


def reference_shape_table(half_size_vox: float = 20.0, angles_deg=(30.0, 20.0, 10.0)) -> pd.DataFrame:
    """Exact 3-D S, ψ, R of the reference shapes beside the workbook's estimates on their voxelisation.

    Shapes are rotated by ``angles_deg`` and have a half-size (radius, half-side) of ``half_size_vox``.
    """
    rotation = shapes.rotation_matrix(angles_deg)
    rows = []
    for name, kind, size, make in _REFERENCE_SHAPES:
        exact = shapes.reference_values(kind, **size(half_size_vox))
        measured = measure_particle(make(half_size_vox, rotation))
        rows.append({"shape": name, "S exact": exact["sphericity"], "S measured": measured["sphericity"],
                     "ψ exact": exact["wadell_sphericity"], "ψ measured": measured["wadell_sphericity"],
                     "R exact": exact["roundness"], "R measured": measured["roundness"],
                     "e_yx": measured["e_yx"], "e_zy": measured["e_zy"]})
    return pd.DataFrame(rows)


def match_paper_examples(table: pd.DataFrame, paper: pd.DataFrame = PAPER_TABLE_S1) -> pd.DataFrame:
    """For each paper example, the measured particle nearest in shape (e_yx, e_zx, e_zy, S, R).

    Only particles above the size cut count; each particle is used once. Returns the measured rows with a
    ``paper_particle`` column.
    """
    columns = ["e_yx", "e_zx", "e_zy", "sphericity", "roundness"]
    pool = table[~table["too_small"]].dropna(subset=columns).copy()
    chosen = []
    for _, example in paper.iterrows():
        distance = np.sqrt(((pool[columns] - example[columns].astype(float)) ** 2).sum(axis=1))
        best = distance.idxmin()
        chosen.append(pool.loc[best].to_dict() | {"paper_particle": example["particle"]})
        pool = pool.drop(index=best)
    return pd.DataFrame(chosen)


def plot_ellipticity(ax, table: pd.DataFrame, size_scale: float = 60.0):
    """Fig. 5B as a 2-D bubble plot: e_zy against e_yx, bubble area and colour = d_eq (µm).

    The third ellipticity is not an independent axis: e_zx = e_yx · e_zy (grey contour lines).
    """
    grid = np.linspace(0, 1, 101)
    ezx = np.outer(grid, grid)
    contours = ax.contour(grid, grid, ezx, levels=[0.2, 0.4, 0.6, 0.8], colors="0.75", linewidths=0.8)
    ax.clabel(contours, fmt=lambda v: f"e_zx={v:.1f}", fontsize=7)
    d = table["d_eq_um"].to_numpy()
    points = ax.scatter(table["e_yx"], table["e_zy"], s=size_scale * d / d.max() * 4, c=d, cmap="viridis",
                        alpha=0.75, edgecolors="k", linewidths=0.3)
    ax.plot([0, 1], [0, 1], color="k", lw=1, label="e_yx = e_zy")
    ax.plot(1, 1, "r*", ms=12, label="isotropic (sphere, cube)")
    ax.set(xlim=(0, 1.02), ylim=(0, 1.02), xlabel="e_yx = b/a", ylabel="e_zy = c/b", aspect="equal")
    ax.legend(loc="lower left", fontsize=8)
    return points


def plot_ellipticity_3d(ax, table: pd.DataFrame):
    """Fig. 5B as the paper drew it: the three ellipticities in 3-D, with the surface e_zx = e_yx·e_zy."""
    grid = np.linspace(0.1, 1, 30)
    x, y = np.meshgrid(grid, grid)
    ax.plot_surface(x, y, x * y, color="0.8", alpha=0.3, linewidth=0)
    d = table["d_eq_um"].to_numpy()
    points = ax.scatter(table["e_yx"], table["e_zy"], table["e_zx"], s=80 * d / d.max() * 4, c=d,
                        cmap="viridis", edgecolors="k", linewidths=0.3, depthshade=False)
    ax.plot([0.1, 1], [0.1, 1], [0.01, 1], "k-", lw=1)
    ax.set(xlabel="e_yx", ylabel="e_zy", zlabel="e_zx", xlim=(0, 1), ylim=(0, 1), zlim=(0, 1))
    ax.view_init(elev=20, azim=-125)
    return points


def plot_sphericity_roundness(ax, table: pd.DataFrame, references: pd.DataFrame | None = None):
    """Fig. 5C: sphericity S against 3-D roundness R, reference shapes at their 3-D values and the paper's."""
    big = table[~table["too_small"]]
    d = big["d_eq_um"].to_numpy()
    points = ax.scatter(big["sphericity"], big["roundness"], c=d, s=20 + 60 * d / d.max(), cmap="viridis",
                        alpha=0.8, edgecolors="k", linewidths=0.3, label="particles (colour = d_eq)")
    if references is not None:
        for i, ref in references.iterrows():
            colour = f"C{i + 1}"
            if np.isfinite(ref["R exact"]):
                ax.plot(ref["S exact"], ref["R exact"], "s", color=colour, ms=9, mfc="none", mew=2)
            ax.plot(ref["S measured"], ref["R measured"], "x", color=colour, ms=9, mew=2)
            ax.annotate(ref["shape"], (ref["S measured"], ref["R measured"]), textcoords="offset points",
                        xytext=(6, -10 if i % 2 else 6), fontsize=7, color=colour)
        ax.plot([], [], "ks", mfc="none", label="3-D exact value")
        ax.plot([], [], "kx", label="3-D, measured on its voxelisation")
    for _, ref in PAPER_REFERENCE_2D.iterrows():
        y = ref["roundness"] if np.isfinite(ref["roundness"]) else 0.02
        ax.plot(ref["sphericity"], y, "D", color="0.4", ms=7)
        ax.annotate(ref["shape"] + " 2-D", (ref["sphericity"], y), textcoords="offset points", xytext=(6, 4),
                    fontsize=7, color="0.3")
    ax.plot(PAPER_MEDIANS["sphericity"], PAPER_MEDIANS["roundness"], "r*", ms=13, label="paper median")
    ax.plot(big["sphericity"].median(), big["roundness"].median(), "k*", ms=13, label="our median")
    ax.set(xlim=(0, 1.05), ylim=(-0.02, 1.05), xlabel="sphericity S = r_ins / r_cir",
           ylabel="3-D Wadell roundness R")
    ax.legend(loc="upper left", fontsize=7)
    return points


def _slice_through(mask, centre):
    return mask[int(round(centre[0]))]


def plot_s7_schematic(axes, half_size_vox: float = 20.0):
    """Fig. S7 from computed shapes: (A) inertia ellipsoid axes, (B) r_ins and r_cir, (C) corner spheres.

    Each panel is the z-slice through the relevant centre of a real voxelised shape, with the quantities
    the workbook computed for it drawn on top (lengths in voxels).
    """
    from matplotlib.patches import Circle

    from helpers.nanoct.morphology import binary_mesh_vertices, circumscribed_radius, inertia_semi_axes

    h = half_size_vox
    ax_a, ax_b, ax_c = axes
    ell = shapes.ellipsoid(1.5 * h, 1.0 * h, 0.7 * h)
    semi, directions = inertia_semi_axes(ell)
    centre = (np.array(ell.shape) - 1) / 2
    ax_a.imshow(_slice_through(ell, centre), cmap="Greys", alpha=0.4, origin="lower")
    for length, direction, name in zip(semi, directions.T, "abc", strict=True):
        if abs(direction[0]) > 0.9:
            ax_a.plot(centre[2], centre[1], "o", color="C2")
            ax_a.annotate(f"c = {length:.1f} (along z)", (centre[2], centre[1]), xytext=(4, 4),
                          textcoords="offset points", color="C2", fontsize=8)
            continue
        tip = centre[1:] + length * direction[1:]
        ax_a.annotate("", xy=(tip[1], tip[0]), xytext=(centre[2], centre[1]),
                      arrowprops={"arrowstyle": "->", "color": "C0" if name == "a" else "C1", "lw": 2})
        ax_a.text(tip[1], tip[0], f" {name} = {length:.1f}", fontsize=8)
    ax_a.set_title(f"A  ellipticity: e_yx = {semi[1] / semi[0]:.2f}, e_zx = {semi[2] / semi[0]:.2f}, "
                   f"e_zy = {semi[2] / semi[1]:.2f}", fontsize=9)

    body = shapes.rounded_cube(h, 0.3 * h)
    import edt

    distance = edt.edt(np.pad(body, 1).astype(np.uint8))[1:-1, 1:-1, 1:-1]
    inner = np.unravel_index(np.argmax(distance), distance.shape)
    r_ins = inscribed_radius(body)
    outer, r_cir = circumscribed_radius(binary_mesh_vertices(np.pad(body, 4)) - 4)
    ax_b.imshow(_slice_through(body, outer), cmap="Greys", alpha=0.4, origin="lower")
    ax_b.add_patch(Circle((inner[2], inner[1]), r_ins, fill=False, color="C0", lw=2))
    ax_b.add_patch(Circle((outer[2], outer[1]), r_cir, fill=False, color="C3", lw=2))
    ax_b.set_xlim(outer[2] - r_cir - 2, outer[2] + r_cir + 2)
    ax_b.set_ylim(outer[1] - r_cir - 2, outer[1] + r_cir + 2)
    ax_b.set_title(f"B  sphericity S = r_ins/r_cir = {r_ins:.1f}/{r_cir:.1f} = {r_ins / r_cir:.2f}",
                   fontsize=9)

    corner_body = shapes.rounded_cube(h, 0.4 * h, shapes.rotation_matrix((0.0, 0.0, 25.0)))
    result = wadell_roundness(corner_body)
    mid = (np.array(corner_body.shape) - 1) / 2
    ax_c.imshow(corner_body[int(mid[0])], cmap="Greys", alpha=0.4, origin="lower")
    near = np.abs(result.corner_centres_vox[:, 0] - mid[0]) < 0.25 * h
    for centre_i, radius_i in zip(result.corner_centres_vox[near], result.corner_radii_vox[near],
                                  strict=True):
        ax_c.add_patch(Circle((centre_i[2], centre_i[1]), radius_i, fill=False, color="C1", lw=1))
    ax_c.add_patch(Circle((mid[2], mid[1]), result.r_ins_vox, fill=False, color="C0", lw=2, ls="--"))
    ax_c.set_title(f"C  roundness R = mean r_i / r_ins = {result.roundness:.2f} (ρ/h = 0.40)", fontsize=9)
    for ax in axes:
        ax.set(xticks=[], yticks=[], aspect="equal")


def render_particle(ax, mask, title: str = "", corners: bool = True, step: int = 2,
                    fill_internal_voids: bool = True):
    """Static 3-D rendering of one particle's smoothed surface; corner pieces in orange when ``corners``.

    ``step`` > 1 coarsens the rendered mesh (``marching_cubes`` step size) to keep drawing fast. Internal
    voids are filled first, as in the particle table (the envelope is what is measured).
    """
    from mpl_toolkits.mplot3d.art3d import Poly3DCollection
    from skimage.measure import marching_cubes

    mask = np.asarray(mask, dtype=bool)
    if fill_internal_voids:
        import fill_voids

        mask = fill_voids.fill(mask, in_place=False)
    vertices, faces, smooth, pad = smoothed_surface(mask)
    colour = np.tile([0.75, 0.78, 0.85, 1.0], (len(faces), 1))
    if corners:
        result = wadell_roundness(mask, surface=(vertices, faces, smooth, pad))
        in_corner = (result.piece_of_vertex[faces] >= 0).all(axis=1)
        colour[in_corner] = [0.95, 0.55, 0.15, 1.0]
    if step > 1:
        coarse_vertices, coarse_faces, _, _ = marching_cubes(smooth, level=0.5, step_size=step)
        if corners:
            from scipy.spatial import cKDTree

            nearest = cKDTree(vertices).query(coarse_vertices)[1]
            coarse_corner = result.piece_of_vertex[nearest] >= 0
            colour = np.tile([0.75, 0.78, 0.85, 1.0], (len(coarse_faces), 1))
            colour[coarse_corner[coarse_faces].all(axis=1)] = [0.95, 0.55, 0.15, 1.0]
        else:
            colour = colour[: len(coarse_faces)]
        vertices, faces = coarse_vertices, coarse_faces
    light = np.array([0.4, -0.5, 0.75])
    triangles = vertices[faces][:, :, ::-1]  # draw x, y, z
    normals = np.cross(triangles[:, 1] - triangles[:, 0], triangles[:, 2] - triangles[:, 0])
    normals /= np.linalg.norm(normals, axis=1, keepdims=True) + 1e-12
    shade = 0.45 + 0.55 * np.abs(normals @ (light / np.linalg.norm(light)))
    colour[:, :3] *= shade[:, None]
    ax.add_collection3d(Poly3DCollection(triangles, facecolors=colour, edgecolor="none"))
    lo, hi = vertices.min(axis=0), vertices.max(axis=0)
    half = (hi - lo).max() / 2
    mid = (hi + lo)[::-1] / 2
    ax.set(xlim=(mid[0] - half, mid[0] + half), ylim=(mid[1] - half, mid[1] + half),
           zlim=(mid[2] - half, mid[2] + half))
    ax.set_box_aspect((1, 1, 1))
    ax.set_axis_off()
    ax.set_title(title, fontsize=9)


def _shade(triangles, colours):
    light = np.array([0.4, -0.5, 0.75]) / np.linalg.norm([0.4, -0.5, 0.75])
    normals = np.cross(triangles[:, 1] - triangles[:, 0], triangles[:, 2] - triangles[:, 0])
    normals /= np.linalg.norm(normals, axis=1, keepdims=True) + 1e-12
    colours[:, :3] *= (0.45 + 0.55 * np.abs(normals @ light))[:, None]
    return colours


def render_population(ax, labels, table: pd.DataFrame | None = None, step: int = 3, cmap: str = "viridis"):
    """Fig. 5A: static 3-D rendering of every particle of ``labels``, coloured by d_eq from ``table``.

    One coarse mesh (``marching_cubes`` with ``step``) of the Gaussian-smoothed union of particles; each
    triangle takes the colour of the particle under it (grey where ``table`` has no row). Matplotlib sorts
    polygons by depth only approximately: this is an overview, not a precise rendering.
    """
    import matplotlib.pyplot as plt
    from mpl_toolkits.mplot3d.art3d import Poly3DCollection
    from scipy import ndimage
    from skimage.measure import marching_cubes

    labels = np.asarray(labels)
    smooth = ndimage.gaussian_filter((labels > 0).astype(np.float32), 1.0)
    vertices, faces, _, _ = marching_cubes(smooth, level=0.5, step_size=step)
    centre_index = np.clip(np.round(vertices[faces].mean(axis=1)).astype(int), 0, np.array(labels.shape) - 1)
    owner = ndimage.grey_dilation(labels, size=3)[tuple(centre_index.T)]
    colours = np.tile([0.6, 0.6, 0.6, 1.0], (len(faces), 1))
    if table is not None:
        d = table.set_index("label")["d_eq_um"]
        known = np.isin(owner, d.index)
        norm = plt.Normalize(d.min(), d.max())
        colours[known] = plt.get_cmap(cmap)(norm(d.loc[owner[known]].to_numpy()))
    triangles = vertices[faces][:, :, ::-1]
    ax.add_collection3d(Poly3DCollection(triangles, facecolors=_shade(triangles, colours), edgecolor="none"))
    ax.set(xlim=(0, labels.shape[2]), ylim=(0, labels.shape[1]), zlim=(0, labels.shape[0]))
    ax.set_box_aspect(labels.shape[::-1])
    ax.set_axis_off()
