"""helpers.nanoct.hmaxima: the same h-maxima markers as scikit-image, by a sort-free reconstruction.

Grey reconstruction only selects values (a maximum over paths of path minima), so an exact algorithm
returns the same floats as scikit-image's downhill filter, and the markers ``image - rec >= h`` are
the same boolean array: the comparisons below are exact equality between two algorithms run in the
same process, not a float result compared across environments.
"""

import numpy as np
import pytest
from skimage.morphology import h_maxima as skimage_h_maxima
from skimage.morphology import reconstruction as skimage_reconstruction

from helpers.nanoct import hmaxima
from helpers.nanoct.hmaxima import h_maxima, reconstruction_by_dilation
from helpers.nanoct.particles import watershed_crop


def _distance_map(mask):
    import edt

    return edt.edt(np.pad(mask, 1), black_border=False, parallel=1)[1:-1, 1:-1, 1:-1].astype(np.float32)


def _ellipsoids(shape, n, rng, radii=(3.0, 12.0)):
    """Union of ``n`` random, randomly oriented ellipsoids (touching/overlapping) in ``shape``."""
    grid = np.stack(np.indices(shape), axis=-1).astype(np.float32)
    solid = np.zeros(shape, bool)
    for _ in range(n):
        centre = rng.uniform(0, shape)
        axes = rng.uniform(*radii, size=3)
        rotation, _ = np.linalg.qr(rng.normal(size=(3, 3)))
        u = ((grid - centre) @ rotation) / axes
        solid |= (u * u).sum(-1) <= 1.0
    return solid


def _same_as_skimage(image, h):
    """Both functions on ``image``: equal arrays and dtype, or the same exception type."""
    try:
        expected = skimage_h_maxima(image, h)
    except ValueError:
        with pytest.raises(ValueError):
            h_maxima(image, h)
        return None
    got = h_maxima(image, h)
    assert got.dtype == expected.dtype == np.uint8
    np.testing.assert_array_equal(got, expected, err_msg=f"shape {image.shape}, h {h!r}")
    return got


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_random_quantised_images_with_plateaus_and_exact_h(dtype):
    """Quantised values (plateaus, ties), h equal to exact value differences, tiny axes, 1-3-D."""
    rng = np.random.default_rng(18)
    n_with_markers = 0
    for _ in range(400):
        ndim = int(rng.integers(1, 4))
        shape = tuple(int(n) for n in rng.integers(1, 10, size=ndim))
        step = float(rng.choice([0.25, 0.5, 1.0, 0.1]))
        image = (rng.integers(0, int(rng.integers(2, 7)), size=shape) * step).astype(dtype)
        h = step * int(rng.integers(1, 4))  # an exact difference of two image values
        got = _same_as_skimage(image, h)
        n_with_markers += got is not None and got.any()
    assert n_with_markers > 200  # the comparison was not made on empty outputs


def test_random_continuous_images_and_h_types():
    rng = np.random.default_rng(7)
    for h in (0.3, 1, np.float64(0.5), np.float32(0.2), 1e-7):
        for _ in range(60):
            shape = tuple(int(n) for n in rng.integers(1, 12, size=int(rng.integers(1, 4))))
            image = rng.normal(size=shape).astype(np.float32)
            _same_as_skimage(image, h)
            _same_as_skimage(np.cumsum(image, axis=-1), h)  # ridges along the last axis


def test_constant_single_voxel_and_h_above_range():
    for image in (np.full((4, 5, 6), 2.5, np.float32), np.ones((1,), np.float32),
                  np.zeros((3, 1, 2), np.float32), np.array([[0.0, 1.0]], np.float32)):
        for h in (0.5, 1.0, 3.0):
            got = _same_as_skimage(image, h)
            if np.ptp(image) < h:
                assert got is not None and not got.any()


def test_large_values_use_the_relative_float_guard():
    """Values ~1e4: the seed's 2·resolution·|image| shift is larger than h's last bits."""
    rng = np.random.default_rng(3)
    for _ in range(50):
        image = (1e4 + rng.integers(0, 4, size=(6, 7, 5))).astype(np.float32)
        for h in (1.0, 2.0):
            _same_as_skimage(image, h)


def test_serpentine_path_needs_the_fifo_queue():
    """A corridor winding back against both scan directions: reconstruction follows it to the end."""
    mask = np.zeros((21, 21), np.float32)
    for row in range(1, 20, 4):
        mask[row, 1:20] = 5.0
    for k, row in enumerate(range(1, 17, 4)):
        mask[row:row + 5, 19 if k % 2 == 0 else 1] = 5.0
    seed = np.zeros_like(mask)
    seed[17, 10] = 5.0  # the corridor's far end in raster order
    rec = reconstruction_by_dilation(seed, mask)
    np.testing.assert_array_equal(rec, skimage_reconstruction(seed, mask, method="dilation"))
    np.testing.assert_array_equal(rec, mask)  # the whole corridor is reached


def test_reconstruction_equals_skimage_on_random_pairs():
    rng = np.random.default_rng(11)
    for _ in range(100):
        shape = tuple(int(n) for n in rng.integers(1, 9, size=int(rng.integers(1, 4))))
        mask = rng.integers(0, 6, size=shape).astype(np.float32)
        seed = np.minimum(mask, rng.integers(0, 6, size=shape)) * (rng.random(shape) < 0.2)
        seed = seed.astype(np.float32)
        np.testing.assert_array_equal(reconstruction_by_dilation(seed, mask),
                                      skimage_reconstruction(seed, mask, method="dilation"))


def test_full_connectivity_corner_neighbours_join_maxima():
    """A lower peak touching a higher one only by a corner (3-D) or a diagonal (2-D).

    With the default full connectivity the lower peak belongs to the higher one's hill (dynamic 0):
    only the higher peak is a marker. With 6- (4-) connectivity it would be an isolated maximum of
    dynamic 4 and a marker too; the skimage call with that footprint shows the test tells them apart.
    """
    image = np.zeros((5, 5, 5), np.float32)
    image[2, 2, 2], image[3, 3, 3] = 5.0, 4.0
    expected = np.zeros(image.shape, np.uint8)
    expected[2, 2, 2] = 1
    np.testing.assert_array_equal(h_maxima(image, 2.0), expected)
    off_centre_axes = (np.indices((3, 3, 3)) != 1).sum(0)
    face_connected = skimage_h_maxima(image, 2.0, footprint=off_centre_axes < 2)
    assert face_connected[3, 3, 3] == 1 and face_connected.sum() == 2
    edge_connected = skimage_h_maxima(image, 2.0, footprint=off_centre_axes < 3)
    assert edge_connected[3, 3, 3] == 1  # 18-connectivity also misses the corner
    plane = image[2:4, 2:4, 2:4].sum(0)  # 2-D: peaks on the diagonal [0,0]=5, [1,1]=4
    plane = np.pad(plane, 2)
    got = h_maxima(plane, 2.0)
    assert got.sum() == 1 and got[2, 2] == 1
    assert skimage_h_maxima(plane, 2.0, footprint=np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]])).sum() == 2


@pytest.mark.parametrize("seed", range(6))
def test_distance_maps_of_touching_ellipsoids(seed):
    rng = np.random.default_rng(seed)
    solid = _ellipsoids((40, 48, 44), int(rng.integers(2, 7)), rng)
    dist = _distance_map(solid)
    for h in (1.0, 0.5, 2.0, float(np.sqrt(2.0)) - 1.0):
        got = _same_as_skimage(dist, h)
        assert got is not None and got.any()


def test_watershed_crop_labels_unchanged(monkeypatch):
    """The whole per-cluster watershed gives the same labels with either h-maxima, both branches."""
    rng = np.random.default_rng(5)
    crops = [_ellipsoids((36, 40, 38), int(rng.integers(1, 6)), rng) for _ in range(8)]
    crops += [_ellipsoids((30, 30, 30), 3, rng, radii=(1.5, 3.0)) for _ in range(4)]  # small: dist.max() ≈ h
    plate = np.zeros((6, 12, 12), bool)
    plate[2:4, 2:10, 2:10] = True  # EDT max exactly 1.0 = h: the dist == dist.max() branch
    bar = np.zeros((6, 12, 12), bool)
    bar[2:5, 2:10, 2:10] = True  # EDT max 2.0 > h: h-maxima branch, several ridge maxima
    crops += [plate, bar, np.ones((4, 5, 6), bool)]  # last: no background in the crop (h > ptp)
    crops = [c for c in crops if c.any()]
    branches = {_distance_map(c).max() > 1.0 for c in crops}
    assert branches == {True, False}  # both branches of watershed_crop are exercised
    new = [watershed_crop(c) for c in crops]
    monkeypatch.setattr(hmaxima, "h_maxima", skimage_h_maxima)
    old = [watershed_crop(c) for c in crops]
    assert any(labels.max() > 1 for labels in old)  # some crops are really split
    for before, after in zip(old, new, strict=True):
        np.testing.assert_array_equal(after, before)


def test_refuses_bad_input():
    with pytest.raises(TypeError, match="floating-point"):
        h_maxima(np.zeros((3, 3), np.uint8), 1)
    with pytest.raises(ValueError, match="NaN"):
        h_maxima(np.array([0.0, np.nan, 1.0], np.float32), 0.5)
    with pytest.raises(ValueError, match="h = 0"):
        h_maxima(np.arange(5, dtype=np.float32), 0)
    with pytest.raises(ValueError, match="positive"):
        h_maxima(np.arange(5, dtype=np.float32), -1.0)
    with pytest.raises(ValueError, match="1-, 2- or 3-D"):
        h_maxima(np.zeros((2, 2, 2, 2), np.float32), 1.0)
