"""Turnable 3-D views of segmented particles (k3d) and their static twins (matplotlib).

- :func:`label_surfaces`: one triangle mesh per particle (marching cubes of its mask, in µm);
- :func:`population_view` / :func:`plot_population_static`: every particle coloured by one column of
  a table (d_eq, sphericity S, roundness R, void fraction…), the column chosen from a drop-down
  beside the view and applied in place (no mesh is re-sent);
- :func:`particle_voids_view` / :func:`plot_particle_voids_static`: one particle, translucent, with its
  internal voids in magenta (the paper's Fig. S8 colours).

k3d was chosen over PyVista by measurement (``benchmarks/RESULTS_view3d.md``): a pip wheel of a few MB
with no rendering server, a 256³ label volume meshed and sent in about a second, and in a kernel
without a browser (nbval) it only records a widget, nothing is rendered. The static functions draw the
same meshes with matplotlib, so the stored notebook shows them on GitHub and on paper.
"""

from __future__ import annotations

import numpy as np

#: colour of the voids (paper, Fig. S8: magenta) and of the particle envelope, as 0xRRGGBB
VOID_COLOUR = 0xFF00FF
PARTICLE_COLOUR = 0xB0B8C8


def label_surfaces(labels: np.ndarray, voxel_size_um: float = 1.0, wanted=None, step: int = 1) -> dict:
    """Triangle mesh of each particle of an integer label volume (0 = background).

    Parameters
    ----------
    labels : (z, y, x) integer array
    voxel_size_um : edge of one voxel (µm); vertices are returned in µm, (x, y, z) order for the viewers
    wanted : labels to mesh (default: all)
    step : marching-cubes step (voxels); 2 quarters the triangles of large particles

    Returns
    -------
    dict label -> (vertices float32 (n, 3) in µm, faces uint32 (m, 3))
    """
    from scipy import ndimage
    from skimage.measure import marching_cubes

    labels = np.asarray(labels)
    if labels.ndim != 3 or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels must be a 3-D integer volume, got {labels.dtype} of shape {labels.shape}")
    boxes = ndimage.find_objects(labels)
    wanted = range(1, len(boxes) + 1) if wanted is None else wanted
    surfaces = {}
    for label in wanted:
        box = boxes[label - 1] if 0 < label <= len(boxes) else None
        if box is None:
            continue
        mask = np.pad(labels[box] == label, 1).astype(np.float32)
        if mask.sum() < 8:  # a few voxels make no surface worth drawing
            continue
        vertices, faces, _, _ = marching_cubes(mask, level=0.5, step_size=step)
        origin = np.array([s.start - 1 for s in box], dtype=np.float32)
        vertices = (vertices + origin)[:, ::-1] * voxel_size_um
        surfaces[int(label)] = (vertices.astype(np.float32), faces.astype(np.uint32))
    return surfaces


def merged_mesh(surfaces: dict, values: dict | None = None):
    """All meshes as one: vertices, faces and each vertex's value (its particle's ``values[label]``)."""
    vertices, faces, attribute, offset = [], [], [], 0
    for label, (v, f) in surfaces.items():
        vertices.append(v)
        faces.append(f + offset)
        attribute.append(np.full(len(v), np.nan if values is None else values.get(label, np.nan), np.float32))
        offset += len(v)
    if not vertices:
        raise ValueError("no particle surface to show (empty label volume?)")
    return np.concatenate(vertices), np.concatenate(faces), np.concatenate(attribute)


def _value_range(values: np.ndarray) -> list[float]:
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return [0.0, 1.0]
    low, high = float(finite.min()), float(finite.max())
    return [low, high if high > low else low + 1e-9]


def column_values(table, column: str, label_column: str = "label") -> dict:
    """``{label: value}`` of one column of a particle table, with a clear error for a wrong name."""
    if column not in table.columns:
        raise KeyError(f"column {column!r} not in the particle table (columns: {list(table.columns)})")
    return dict(zip(table[label_column].astype(int), table[column].astype(float), strict=True))


def _split_by_value(surfaces: dict, values: dict):
    """(meshes with a finite value, meshes without) as two ``surfaces`` dicts."""
    valued = {k: m for k, m in surfaces.items() if np.isfinite(values.get(k, np.nan))}
    return valued, {k: m for k, m in surfaces.items() if k not in valued}


def population_view(surfaces: dict, table, columns: list[str], column: str | None = None,
                    label_column: str = "label", height: int = 480):
    """Every particle coloured by a column chosen from a drop-down beside the turnable view (k3d).

    Particles without a finite value in that column (below a size cut, say) are drawn grey. A new
    column updates the two meshes in place (same k3d objects, new arrays).
    """
    import ipywidgets
    import k3d

    plot = k3d.plot(grid_visible=False, axes=["x (µm)", "y (µm)", "z (µm)"], height=height,
                    camera_auto_fit=True, menu_visibility=False)
    v, f, _ = merged_mesh(surfaces)
    coloured = k3d.mesh(v, f, attribute=np.zeros(len(v), np.float32),
                        color_map=k3d.colormaps.matplotlib_color_maps.Viridis, name="valued")
    grey = k3d.mesh(v, f, color=PARTICLE_COLOUR, name="no value", visible=False)
    plot += coloured
    plot += grey
    choice = ipywidgets.Dropdown(options=columns, value=column or columns[0], description="colour by")
    legend = ipywidgets.HTML()

    def recolour(change=None):
        values = column_values(table, choice.value, label_column)
        valued, missing = _split_by_value(surfaces, values)
        if valued:
            v, f, attribute = merged_mesh(valued, values)
            low, high = _value_range(attribute)
            with coloured.hold_sync():  # one message: new geometry and its colours together
                coloured.vertices, coloured.indices, coloured.attribute = v, f, attribute
                coloured.color_range = [low, high]
        coloured.visible = bool(valued)
        if missing:
            grey.vertices, grey.indices = merged_mesh(missing)[:2]
        grey.visible = bool(missing)
        legend.value = (f"<pre>{choice.value}: {len(valued)} particles\n"
                        f"viridis {low:.3g} … {high:.3g}\n" if valued else "<pre>"
                        ) + f"grey: {len(missing)} without a value</pre>"

    choice.observe(recolour, names="value")
    recolour()
    panel = ipywidgets.HBox([ipywidgets.VBox([choice, legend]), plot])
    panel.add_class("nmc-view3d")
    return panel


def plot_population_static(ax, surfaces: dict, values: dict, label: str = "", cmap: str = "viridis"):
    """Static twin of :func:`population_view` on a matplotlib 3-D axis; returns the colour mappable."""
    import matplotlib as mpl
    from mpl_toolkits.mplot3d.art3d import Poly3DCollection

    vertices, faces, attribute = merged_mesh(surfaces, values)
    low, high = _value_range(attribute)
    norm = mpl.colors.Normalize(low, high)
    face_value = attribute[faces[:, 0]]
    colours = mpl.colormaps[cmap](norm(np.nan_to_num(face_value, nan=low)))
    colours[~np.isfinite(face_value)] = [0.7, 0.7, 0.7, 1.0]
    ax.add_collection3d(Poly3DCollection(vertices[faces], facecolors=colours, linewidths=0))
    _frame(ax, vertices)
    mappable = mpl.cm.ScalarMappable(norm=norm, cmap=cmap)
    ax.set_title(f"coloured by {label}" if label else "")
    return mappable


def population_figure(surfaces: dict, table, column: str, colour_label: str, figsize=(5.5, 4.5)):
    """A pyplot figure of :func:`plot_population_static` coloured by ``column`` of ``table``, with its
    colour bar labelled ``colour_label``: the stored static view beside a notebook's 3-D population."""
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=figsize)
    ax = fig.add_subplot(projection="3d")
    colours = plot_population_static(ax, surfaces, column_values(table, column))
    fig.colorbar(colours, ax=ax, shrink=0.6, label=colour_label)
    return fig


def _frame(ax, vertices):
    low, high = vertices.min(axis=0), vertices.max(axis=0)
    ax.set(xlim=(low[0], high[0]), ylim=(low[1], high[1]), zlim=(low[2], high[2]),
           xlabel="x (µm)", ylabel="y (µm)", zlabel="z (µm)")
    ax.set_box_aspect(high - low)


def particle_voids_meshes(solid: np.ndarray, void_mask: np.ndarray, voxel_size_um: float):
    """Meshes of one particle's envelope (solid ∪ voids) and of its voids (label 1 = each void region)."""
    from skimage.measure import label as connected

    envelope = label_surfaces((np.asarray(solid) | np.asarray(void_mask)).astype(np.int32), voxel_size_um)
    voids = label_surfaces(connected(np.asarray(void_mask)).astype(np.int32), voxel_size_um)
    return envelope, voids


def particle_voids_view(solid: np.ndarray, void_mask: np.ndarray, voxel_size_um: float, height: int = 420):
    """One particle, translucent, with its internal voids in magenta; a turnable k3d view."""
    import k3d

    envelope, voids = particle_voids_meshes(solid, void_mask, voxel_size_um)
    plot = k3d.plot(grid_visible=False, height=height, camera_auto_fit=True, menu_visibility=False)
    v, f, _ = merged_mesh(envelope)
    plot += k3d.mesh(v, f, color=PARTICLE_COLOUR, opacity=0.25, name="particle")
    if voids:
        v, f, _ = merged_mesh(voids)
        plot += k3d.mesh(v, f, color=VOID_COLOUR, name="voids")
    return plot


def plot_particle_voids_static(ax, solid: np.ndarray, void_mask: np.ndarray, voxel_size_um: float,
                               title: str = ""):
    """Static twin of :func:`particle_voids_view` on a matplotlib 3-D axis."""
    from mpl_toolkits.mplot3d.art3d import Poly3DCollection

    envelope, voids = particle_voids_meshes(solid, void_mask, voxel_size_um)
    v, f, _ = merged_mesh(envelope)
    ax.add_collection3d(Poly3DCollection(v[f], facecolors=(0.69, 0.72, 0.78, 0.12), linewidths=0))
    if voids:
        vv, fv, _ = merged_mesh(voids)
        ax.add_collection3d(Poly3DCollection(vv[fv], facecolors=(1.0, 0.0, 1.0, 0.9), linewidths=0))
    _frame(ax, v)
    ax.set_title(title)
