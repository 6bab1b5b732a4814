"""3-D views: meshes in µm and in (x, y, z) order, colours follow the chosen column, errors are clear."""

import numpy as np
import pandas as pd
import pytest

from helpers import view3d


def _two_particles():
    z, y, x = np.mgrid[:40, :40, :80]
    labels = np.zeros((40, 40, 80), np.int32)
    labels[(z - 20) ** 2 + (y - 20) ** 2 + (x - 20) ** 2 <= 12**2] = 1  # ball, radius 12 voxels
    labels[10:30, 10:30, 50:75] = 2  # box 20 × 20 × 25 voxels, long along x
    return labels


def test_ball_surface_area_and_box_extent_in_micrometres():
    surfaces = view3d.label_surfaces(_two_particles(), voxel_size_um=0.025)
    v, f = surfaces[1]
    triangles = v[f]
    edges = np.cross(triangles[:, 1] - triangles[:, 0], triangles[:, 2] - triangles[:, 0])
    area = 0.5 * np.linalg.norm(edges, axis=1).sum()
    # marching cubes of a voxelised ball overestimates the sphere's area by a few % (staircase), r = 12 vox
    assert area == pytest.approx(4 * np.pi * (12 * 0.025) ** 2, rel=0.08)
    v2, _ = surfaces[2]
    extent = v2.max(axis=0) - v2.min(axis=0)  # (x, y, z): 25 × 20 × 20 voxels minus the half-voxel iso-level
    assert extent == pytest.approx(np.array([24, 19, 19]) * 0.025, abs=0.026)


def test_merged_mesh_carries_each_particles_value_to_its_vertices():
    surfaces = view3d.label_surfaces(_two_particles())
    v, f, attribute = view3d.merged_mesh(surfaces, {1: 3.0, 2: 7.0})
    assert set(np.unique(attribute)) == {3.0, 7.0}
    assert (attribute == 3.0).sum() == len(surfaces[1][0])
    assert f.max() == len(v) - 1


def test_population_view_recolours_the_same_mesh_in_place():
    table = pd.DataFrame({"label": [1, 2], "d_eq_um": [0.6, 0.8], "void_fraction": [0.0, np.nan]})
    surfaces = view3d.label_surfaces(_two_particles())
    panel = view3d.population_view(surfaces, table, ["d_eq_um", "void_fraction"])
    choice, plot = panel.children[0].children[0], panel.children[1]
    coloured, grey = plot.objects
    assert list(coloured.color_range) == pytest.approx([0.6, 0.8]) and not grey.visible
    choice.value = "void_fraction"  # particle 2 has no value: it moves to the grey mesh
    assert plot.objects == [coloured, grey] and grey.visible
    assert len(grey.vertices) == len(surfaces[2][0]) and len(coloured.vertices) == len(surfaces[1][0])


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match="3-D integer"):
        view3d.label_surfaces(np.zeros((4, 4)))
    with pytest.raises(KeyError, match="roundness"):
        view3d.column_values(pd.DataFrame({"label": [1]}), "roundness")
    with pytest.raises(ValueError, match="no particle"):
        view3d.merged_mesh({})


def test_population_figure_colours_by_the_column_with_a_labelled_colour_bar():
    """The static twin: one face colour per particle from the table's column (grey where it is NaN), the
    colour bar spanning the column's range and carrying the given label."""
    import matplotlib.pyplot as plt

    table = pd.DataFrame({"label": [1, 2], "void_fraction": [0.1, np.nan]})
    fig = view3d.population_figure(view3d.label_surfaces(_two_particles()), table, "void_fraction",
                                   "void fraction")
    ax3d, bar = fig.axes
    faces = ax3d.collections[0].get_facecolor()
    assert len(np.unique(faces.round(6), axis=0)) == 2  # particle 1 coloured, particle 2 grey
    assert any(np.allclose(c, [0.7, 0.7, 0.7, 1.0]) for c in faces)
    assert bar.get_ylabel() == "void fraction"
    plt.close(fig)
