"""Filtered back-projection behind one function, with gain 1 and one orientation for every backend.

Convention (pinned by tests against exact line integrals): the sinogram is ``(n_angles, n_det)``;
detector pixel ``i`` sits at ``s = i − center``; the projection at angle θ integrates along the line
``x cos θ + y sin θ = s`` (θ from +x towards +y). The returned image ``img[row, col]`` has
``x = col − (n_det−1)/2`` and ``y = row − (n_det−1)/2``, and its values are the attenuation (or δ, or
whatever was integrated) per pixel: a sinogram in units·pixel gives an image in units.

Backends (``method``):

- ``"fbp"``: the workbook's FBP: algotom's ramp filter and a numba back-projector parallel over image
  rows, written in the convention (no flip, no calibration), gain 1 — the reference.
- ``"gridding"`` (alias ``"nufft"``): the same FBP evaluated in Fourier space (Fourier-slice theorem):
  the ramp-filtered projections (same filter as ``"fbp"``) are Fourier transformed and summed onto
  the Cartesian image by finufft's type-1 non-uniform FFT, the exact adjoint of the Radon transform.
  The linear interpolation of ``"fbp"`` is reproduced exactly in Fourier space (the sample spectrum
  times sinc², kept up to ``GRIDDING_NU_MAX`` cycles/px, i.e. with its first aliases), so the two
  agree to 0.09 % NRMSE at 2048 px (the neglected aliases beyond 1.5 cycles/px) at O(N_θ·n + n² log n)
  cost instead of O(N_θ·n²). On 360° scans the angles θ and θ + π share their non-uniform points (half
  the points, 1.8× faster, same accuracy: :func:`_opposite_pairs`). Needs ``finufft``.
- ``"algotom_fbp"``: algotom's own FBP. Its CPU back-projector runs threads over angles that add into
  one shared image (a data race: repeated calls differed by up to 15 % of the signal on 2 cores), so
  it is run with one numba thread; it returns the image flipped up-down, which we flip back.
- ``"dfi"``: algotom's direct Fourier inversion (fast); flipped like FBP and, for even sizes, half a
  pixel off in both axes: corrected by the calibration below.
- ``"gridrec"``: tomopy gridrec when tomopy is importable (conda-forge); padded, centre-shifted and
  rescaled by a calibration on an exact disk sinogram so it agrees with FBP (:func:`calibration`).
- ``"skimage"``: scikit-image ``iradon`` (pure Python reference of another lineage), same calibration.

360° data are used fully (every backend receives all angles; each ray is then measured twice, which
FBP weights by the angular step).
"""

from __future__ import annotations

import functools

import numpy as np

METHODS = ("fbp", "gridding", "nufft", "algotom_fbp", "dfi", "gridrec", "skimage")
GRIDDING_NU_MAX = 1.5  # cycles/px of the interpolated projection kept by "gridding" (baseband + first alias)
GRIDDING_EPS = 2e-5  # finufft relative tolerance (single precision; 1e-5 makes finufft warn at σ = 1.25)
GRIDDING_UPSAMPLING = 1.25  # finufft's fine-grid factor σ: 2× faster than σ = 2 here, same accuracy


@functools.lru_cache(maxsize=1)
def _backprojector():
    """Numba back-projector, parallel over image rows (each thread owns its rows: no data race)."""
    import numba

    @numba.njit(parallel=True, cache=False)
    def backproject(sino, cos_t, sin_t, center, out):  # pragma: no cover - compiled
        n_ang, n_det = sino.shape
        n = out.shape[0]
        c = 0.5 * (n - 1)
        last = n_det - 1
        for row in numba.prange(n):
            y = row - c
            for k in range(n_ang):
                ct, st = cos_t[k], sin_t[k]
                base = y * st + center - c * ct
                # detector position f = base + col·ct; visit only the columns with 0 ≤ f ≤ last
                if abs(ct) < 1e-9:
                    if base < 0.0 or base > last:
                        continue
                    c0, c1 = 0, n - 1
                else:
                    lo, hi = -base / ct, (last - base) / ct
                    if ct < 0:
                        lo, hi = hi, lo
                    c0, c1 = max(0, int(np.ceil(lo))), min(n - 1, int(np.floor(hi)))
                for col in range(c0, c1 + 1):
                    f = base + col * ct
                    i = min(max(int(f), 0), last - 1)
                    w = f - i
                    out[row, col] += sino[k, i] + w * (sino[k, i + 1] - sino[k, i])
        return out

    return backproject


def _workbook_fbp(sinogram, angles_rad, center, filter_name):
    """Ramp filter (algotom's ``apply_ramp_filter``) + race-free numba back-projection, × π/n_angles."""
    from algotom.rec.reconstruction import apply_ramp_filter

    n_ang, n_det = sinogram.shape
    filtered = np.ascontiguousarray(apply_ramp_filter(sinogram, None, filter_name), dtype=np.float32)
    out = np.zeros((n_det, n_det), dtype=np.float32)
    _backprojector()(
        filtered,
        np.cos(angles_rad).astype(np.float32),
        np.sin(angles_rad).astype(np.float32),
        np.float32(center),
        out,
    )
    return out * np.float32(np.pi / n_ang)


@functools.lru_cache(maxsize=8)
def _ramp_window(width: int, filter_name: str | None) -> np.ndarray:
    """algotom's ramp (× smoothing window) for a padded row of ``width``, in ``rfft`` order."""
    from algotom.rec.reconstruction import make_2d_ramp_window

    full = np.fft.ifftshift(make_2d_ramp_window(1, width, filter_name)[0])
    # algotom keeps the real part of the filtered rows: Re ifft(X·H) = ifft(X·H_h) with the Hermitian
    # part H_h(f) = (H(f) + H*(−f))/2 (differs from H for windows not symmetric about 0, e.g. even
    # widths); H_h's rfft half then holds all of it
    hermitian = 0.5 * (full + np.conj(np.roll(full[::-1], 1)))
    return hermitian[: width // 2 + 1].astype(np.complex64)


def ramp_filter(sinogram: np.ndarray, filter_name: str | None = None) -> np.ndarray:
    """algotom's ``apply_ramp_filter`` (edge padding of min(0.15 n, 150) px) with real float32 FFTs.

    Same filter, same padding, same crop; 5–10× faster (``scipy.fft`` rfft, 2 workers). Tested equal
    to algotom's to float32 precision.
    """
    n_ang, n_det = sinogram.shape
    pad = min(int(0.15 * n_det), 150)
    width = n_det + 2 * pad
    padded = np.pad(sinogram.astype(np.float32, copy=False), ((0, 0), (pad, pad)), mode="edge")
    from scipy import fft

    spectrum = fft.rfft(padded, axis=1, workers=-1)
    spectrum *= _ramp_window(width, filter_name)[None, :]
    out = fft.irfft(spectrum, n=width, axis=1, workers=-1)
    # algotom's filter ends with an ifftshift of the rows (its kernel is centred at width // 2)
    index = (np.arange(pad, pad + n_det) + width // 2) % width
    return np.ascontiguousarray(out[:, index], dtype=np.float32)


def _gridding_period(n_det: int, center: float) -> int:
    """FFT length L of the projections: the detector support, repeated every L px, must not reach the
    image square (radius (n−1)/√2 around the axis): L > (n−1)/√2 + max(center, n−1−center) + 2."""
    from scipy import fft

    reach = (n_det - 1) / np.sqrt(2.0) + max(center, n_det - 1 - center) + 2
    return fft.next_fast_len(int(np.ceil(reach)), real=False)


def gridding_memory_bytes(n_angles: int, n_det: int, center: float | None = None) -> int:
    """Bound of the memory (bytes) of ``method="gridding"`` for one slice, plan included.

    P = n_angles × (⌊1.5 L⌋ + 1) non-uniform points (L from :func:`_gridding_period`; the worst case,
    a centre at the detector edge, when ``center`` is None). Kept in the plan: float32 x, y and the
    complex64 factor (16 B/point) and finufft's sort index (8 B/point, C++); per slice: the complex64
    strengths (8 B/point), the projections' spectra (8 B × n_angles × L), the float32 ramp-filter
    work rows (16 B × n_angles × 1.3 n_det), finufft's 1.25n × 1.25n complex64 fine grid and the
    n × n complex64 output with its float copies (≤ 48 B × n²); the plan is built in blocks of 256 angles
    (≤ 40 B × 256 × 1.5 L transient). ≈ 0.9 GiB at 2048 × 3203 (worst-case centre; measured numpy
    peak 0.44 GB, `benchmarks/RESULTS_ct_recon.md`).
    """
    period = _gridding_period(n_det, 0.0 if center is None else float(center))
    points = n_angles * (int(np.floor(GRIDDING_NU_MAX * period)) + 1)
    return int(
        32 * points
        + 8 * n_angles * period
        + 16 * n_angles * (n_det + 2 * min(int(0.15 * n_det), 150))
        + 48 * n_det * n_det
        + 40 * 256 * (int(np.floor(GRIDDING_NU_MAX * period)) + 1)
    )


class _GriddingPlan:
    """finufft type-1 plan and per-point factors for one (n_det, centre, angle set): reused per slice.

    Kept between calls (one plan cached; memory in :func:`gridding_memory_bytes`, ≈ 0.4 GiB at
    2048 × 3203): a volume reconstructed slice by slice pays the set-up (≈ 1 s there) once. Points are
    placed for the angles ``first`` only; the strengths of each one's opposite angle (``second``) are
    conjugated and added onto them (:func:`_opposite_pairs`). The result differs from one point set per
    angle by the single-precision NUFFT's own error (measured on a 1280 px × 1600 angle noisy scan
    against a double-precision NUFFT: rms 2.9e-5 of the image's rms, max 2.3e-4 of its maximum, for
    both; finufft's kernel width 8 is the most it allows in single precision at σ = 1.25).
    """

    def __init__(self, n_det: int, center: float, angles_rad: np.ndarray, eps: float, nu_max: float):
        try:
            import finufft
        except ImportError as err:
            raise ImportError(
                "method='gridding' needs finufft: `pip install finufft` (or conda-forge), "
                "or use method='fbp'"
            ) from err

        self.period = _gridding_period(n_det, center)
        m = np.arange(int(np.floor(nu_max * self.period)) + 1)
        self.index = m % self.period  # DFT bin of each frequency (aliases repeat the spectrum)
        nu = 2 * np.pi * m / self.period  # rad/px
        # Hermitian symmetry: the image is 2·Re of the sum over ν ≥ 0 (ν = 0 and Nyquist once)
        weight = np.full(m.shape, 2.0)
        weight[0] = 1.0
        if 2 * m[-1] == self.period:
            weight[-1] = 1.0
        # linear interpolation of the detector samples = their spectrum × sinc²(ν) (all aliases)
        weight *= np.sinc(m / self.period) ** 2 / self.period
        # image pixel x = k + offset with finufft's mode k (offset ½ for even n); detector s = i − center
        offset = n_det // 2 - (n_det - 1) / 2.0
        n_ang = len(angles_rad)
        # opposite angles share their non-uniform points: angle θ + π puts frequency ν ≥ 0 on the point
        # −p of angle θ, and Re(c·e^{−ip·x}) = Re(c̄·e^{ip·x}), so its strengths are conjugated and added
        # onto θ's points (a 360° scan with an even number of equally spaced angles: half the points)
        self.first, self.second = _opposite_pairs(angles_rad)
        self.factor = np.empty((n_ang, len(m)), np.complex64)
        for a in range(0, n_ang, 256):  # blocks of angles: bounded float64 temporaries
            cos_t = np.cos(angles_rad[a : a + 256])[:, None]
            sin_t = np.sin(angles_rad[a : a + 256])[:, None]
            shift = center + offset * (cos_t + sin_t)
            self.factor[a : a + 256] = weight[None, :] * np.exp(1j * nu[None, :] * shift)
        wx = np.empty((len(self.first), len(m)), np.float32)
        wy = np.empty((len(self.first), len(m)), np.float32)
        for a in range(0, len(self.first), 256):
            sel = self.first[a : a + 256]
            cos_t = np.cos(angles_rad[sel])[:, None]
            sin_t = np.sin(angles_rad[sel])[:, None]
            wx[a : a + 256] = np.mod(nu[None, :] * cos_t + np.pi, 2 * np.pi) - np.pi  # aliases fold
            wy[a : a + 256] = np.mod(nu[None, :] * sin_t + np.pi, 2 * np.pi) - np.pi
        self.plan = finufft.Plan(
            1,
            (n_det, n_det),
            eps=eps,
            isign=1,
            dtype=np.complex64,
            upsampfac=GRIDDING_UPSAMPLING,
            # one thread: finufft's threads add sub-grids in varying order (repeats differ at float32
            # rounding); single-threaded it is bit-reproducible and, on 2 shared cores, as fast
            nthreads=1,
        )
        # finufft's first axis is image rows (y); the plan keeps references to the coordinates
        self.points = (wy.ravel(), wx.ravel())
        self.plan.setpts(*self.points)

    def __call__(self, filtered: np.ndarray) -> np.ndarray:
        from scipy import fft

        spectrum = fft.fft(filtered, n=self.period, axis=1, workers=-1)
        strengths = spectrum[self.first[:, None], self.index[None, :]]
        strengths *= self.factor[self.first]
        paired = self.second >= 0
        if paired.any():
            opposite = spectrum[self.second[paired][:, None], self.index[None, :]]
            opposite *= self.factor[self.second[paired]]
            strengths[paired] += np.conj(opposite)
            del opposite
        del spectrum
        return self.plan.execute(strengths.ravel()).real


OPPOSITE_TOLERANCE_RAD = 1e-10  # θ' ≡ θ + π within this: moves a point by ≤ 3π·n·1e-10 rad of phase (≪ eps)


def _opposite_pairs(angles_rad: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Angles that keep their own NUFFT points (``first``) and, for each, the index of its opposite
    (θ + π modulo 2π within :data:`OPPOSITE_TOLERANCE_RAD`) or −1 (``second``); every angle once."""
    turn = np.mod(np.asarray(angles_rad, float), 2 * np.pi)
    order = np.argsort(turn, kind="stable")
    sorted_turn = turn[order]
    used = np.zeros(len(turn), bool)
    first, second = [], []
    for k in range(len(turn)):
        if used[k]:
            continue
        used[k] = True
        target = np.mod(turn[k] + np.pi, 2 * np.pi)
        partner = -1
        for t in (target, target - 2 * np.pi, target + 2 * np.pi):  # near 0 and 2π
            i = int(np.searchsorted(sorted_turn, t - OPPOSITE_TOLERANCE_RAD))
            while i < len(order) and sorted_turn[i] <= t + OPPOSITE_TOLERANCE_RAD:
                if not used[order[i]]:
                    partner = int(order[i])
                    break
                i += 1
            if partner >= 0:
                break
        if partner >= 0:
            used[partner] = True
        first.append(k)
        second.append(partner)
    return np.asarray(first, np.intp), np.asarray(second, np.intp)


@functools.lru_cache(maxsize=1)
def _gridding_plan(n_det, center, angle_bytes, eps, nu_max):
    return _GriddingPlan(n_det, center, np.frombuffer(angle_bytes, dtype=np.float64), eps, nu_max)


def _gridding_fbp(sinogram, angles_rad, center, filter_name):
    """FBP by gridding: ramp filter, 1-D FFT of each projection, type-1 NUFFT onto the image, × π/N_θ."""
    plan = _gridding_plan(
        sinogram.shape[1], float(center), np.ascontiguousarray(angles_rad).tobytes(), GRIDDING_EPS,
        GRIDDING_NU_MAX,
    )
    img = plan(ramp_filter(sinogram, filter_name))
    return (img * (np.pi / len(angles_rad))).astype(np.float32)


def _check(sinogram: np.ndarray, angles_rad: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    # contiguous copy: algotom's numba FBP silently returns a wrong image for a strided view
    sinogram = np.ascontiguousarray(sinogram, dtype=np.float32)
    angles_rad = np.asarray(angles_rad, dtype=np.float64)
    if sinogram.ndim != 2:
        raise ValueError(f"sinogram must be 2-D (n_angles, n_det), got shape {sinogram.shape}")
    if angles_rad.ndim != 1 or len(angles_rad) != sinogram.shape[0]:
        raise ValueError(
            f"{len(np.atleast_1d(angles_rad))} angles given for a sinogram of {sinogram.shape[0]} rows: "
            "pass one angle (rad) per sinogram row"
        )
    if not np.all(np.isfinite(sinogram)):
        raise ValueError("sinogram holds NaN or inf values: check the flat/dark correction (flats ≤ darks?)")
    return sinogram, angles_rad


def _center_to_middle(sinogram: np.ndarray, center: float) -> np.ndarray:
    """Shift the sinogram so the rotation axis sits at (n−1)/2 (Fourier shift, sub-pixel)."""
    from scipy import ndimage

    shift = (sinogram.shape[1] - 1) / 2.0 - center
    if abs(shift) < 1e-9:
        return sinogram
    pad = int(np.ceil(abs(shift))) + 8
    padded = np.pad(sinogram, ((0, 0), (pad, pad)), mode="edge")
    shifted = np.fft.ifft(ndimage.fourier_shift(np.fft.fft(padded, axis=1), (0.0, shift)), axis=1).real
    return shifted[:, pad:-pad].astype(np.float32)


def _raw(sinogram, angles_rad, center, method, filter_name):
    """Backend call, no orientation or gain correction."""
    if method == "fbp":
        return _workbook_fbp(sinogram, angles_rad, center, filter_name)
    if method in ("gridding", "nufft"):
        return _gridding_fbp(sinogram, angles_rad, center, filter_name)
    if method == "algotom_fbp":
        import numba
        from algotom.rec.reconstruction import fbp_reconstruction

        # algotom's CPU back-projector accumulates into one image from threads running over angles
        # (a data race: repeated calls differ by up to 15 % of the signal); one thread makes it exact
        threads = numba.get_num_threads()
        numba.set_num_threads(1)
        try:
            return fbp_reconstruction(
                sinogram,
                center,
                angles=angles_rad,
                filter_name=filter_name,
                apply_log=False,
                gpu=False,
                ncore=1,
            )
        finally:
            numba.set_num_threads(threads)
    if method == "dfi":
        from algotom.rec.reconstruction import dfi_reconstruction

        return dfi_reconstruction(
            sinogram, center, angles=angles_rad, filter_name=filter_name, apply_log=False
        )
    if method == "skimage":
        from skimage.transform import iradon

        sino = _center_to_middle(sinogram, center)
        return iradon(sino.T, theta=np.degrees(angles_rad), filter_name="ramp", circle=True)
    if method == "gridrec":
        try:
            import tomopy
        except ImportError as err:
            raise ImportError(
                "method='gridrec' needs tomopy (conda-forge only): `conda install -c conda-forge tomopy`, "
                "or use method='fbp' / 'dfi'"
            ) from err
        n = sinogram.shape[1]
        pad = n // 2
        sino = np.pad(sinogram, ((0, 0), (pad, pad)), mode="edge")
        img = tomopy.recon(
            sino[:, None, :],
            angles_rad,
            center=center + pad,
            algorithm="gridrec",
            filter_name="ramp",
            ncore=1,
        )[0]
        return img[pad : pad + n, pad : pad + n]
    raise ValueError(f"unknown method {method!r}: choose one of {METHODS}")


_TRANSFORMS = {
    "identity": lambda a: a,
    "flipud": np.flipud,
    "fliplr": np.fliplr,
    "rot180": lambda a: a[::-1, ::-1],
    "transpose": lambda a: a.T,
    "rot90": np.rot90,
    "rot270": lambda a: np.rot90(a, 3),
    "antitranspose": lambda a: a[::-1, ::-1].T,
}


def _disk_test_object(n: int):
    """An asymmetric pair of uniform disks, its exact sinogram maker and its image (for calibration)."""
    disks = [(0.18 * n, -0.12 * n, 0.12 * n, 1.0), (-0.15 * n, 0.2 * n, 0.06 * n, 0.5)]

    def sinogram(angles):
        s = np.arange(n) - (n - 1) / 2.0
        out = np.zeros((len(angles), n))
        for x0, y0, r, v in disks:
            d = s[None, :] - (x0 * np.cos(angles)[:, None] + y0 * np.sin(angles)[:, None])
            out += v * 2.0 * np.sqrt(np.clip(r * r - d * d, 0, None))
        return out

    y, x = np.mgrid[0:n, 0:n] - (n - 1) / 2.0
    interior = [(np.hypot(x - x0, y - y0) < r - 3, v) for x0, y0, r, v in disks]
    sub = (np.arange(4 * n) + 0.5) / 4 - 0.5 - (n - 1) / 2.0
    ys, xs = np.meshgrid(sub, sub, indexing="ij")
    image = sum(v * (np.hypot(xs - x0, ys - y0) <= r) for x0, y0, r, v in disks)
    image = image.reshape(n, 4, n, 4).mean(axis=(1, 3))
    return sinogram, interior, image


@functools.lru_cache(maxsize=32)
def calibration(method: str, n_det: int, angle_key: tuple) -> tuple[str, float, tuple[float, float]]:
    """Orientation, gain and sub-pixel shift of a backend, measured on an exact two-disk sinogram.

    Returns the transform name (one of the 8 flips/rotations) that best matches the convention, the
    gain (mean over the big disk's interior divided by its value) and the (row, col) shift that aligns
    the result with the exact image (phase correlation, 1/20 px; algotom DFI and scikit-image put the
    centre at n/2 instead of (n−1)/2 for even n: a half-pixel shift). Cached per size and angle set.
    Used for every backend except ``fbp``/``gridding``/``algotom_fbp``, whose conventions are pinned
    by tests.
    """
    from skimage.registration import phase_cross_correlation

    angles = np.linspace(angle_key[0], angle_key[1], angle_key[2], endpoint=False)
    make_sino, interior, exact = _disk_test_object(n_det)
    img = _raw(make_sino(angles).astype(np.float32), angles, (n_det - 1) / 2.0, method, None)
    best, best_err = "identity", np.inf
    for name, f in _TRANSFORMS.items():
        t = f(img)
        err = sum(abs(t[m].mean() - v) for m, v in interior)
        if err < best_err:
            best, best_err = name, err
    t = _TRANSFORMS[best](img)
    gain = float(t[interior[0][0]].mean() / interior[0][1])
    shift, _, _ = phase_cross_correlation(exact, t, upsample_factor=20)
    # backends differ by whole or half pixels (centre at n/2 vs (n−1)/2): snap to 0.5 px
    return best, gain, (float(np.round(2 * shift[0]) / 2), float(np.round(2 * shift[1]) / 2))


def _fourier_shift_image(img: np.ndarray, shift: tuple[float, float]) -> np.ndarray:
    from scipy import ndimage

    if max(abs(shift[0]), abs(shift[1])) < 1e-6:
        return img
    return np.fft.ifft2(ndimage.fourier_shift(np.fft.fft2(img), shift)).real


def reconstruct(
    sinogram: np.ndarray,
    angles_rad: np.ndarray,
    center: float | None = None,
    method: str = "fbp",
    filter_name: str | None = None,
) -> np.ndarray:
    """Reconstruct one slice; returns (n_det, n_det) float32 in the documented orientation, gain 1.

    Parameters
    ----------
    sinogram : (n_angles, n_det) line integrals (e.g. −ln of the flat-field-corrected transmission, or
        the projected δ in pixel units).
    angles_rad : one angle per row (rad); 180° or 360° scans.
    center : rotation-axis position in detector pixels (default the middle, (n_det−1)/2).
    method : ``"fbp"`` (reference), ``"gridding"``/``"nufft"`` (the same FBP by NUFFT, ~10× faster;
        needs finufft), ``"algotom_fbp"``, ``"dfi"``, ``"gridrec"`` (needs tomopy), ``"skimage"``.
    filter_name : algotom filter window (``None`` = pure ramp, or ``"hann"``, ``"hamming"``, …) for
        ``fbp``/``gridding``/``dfi``; a window lowers noise and resolution.
    """
    sinogram, angles_rad = _check(sinogram, angles_rad)
    n_det = sinogram.shape[1]
    if center is None:
        center = (n_det - 1) / 2.0
    if not 0 <= center <= n_det - 1:
        raise ValueError(f"center {center} px is outside the detector (0 … {n_det - 1})")
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}: choose one of {METHODS}")
    img = _raw(sinogram, angles_rad, float(center), method, filter_name)
    if method in ("fbp", "gridding", "nufft"):
        return np.ascontiguousarray(img, dtype=np.float32)
    if method == "algotom_fbp":
        return np.ascontiguousarray(np.flipud(img), dtype=np.float32)
    span = float(angles_rad[-1] - angles_rad[0]) * len(angles_rad) / max(len(angles_rad) - 1, 1)
    key = (round(float(angles_rad[0]), 9), round(float(angles_rad[0]) + span, 9), len(angles_rad))
    transform, gain, shift = calibration(method, n_det, key)
    img = _fourier_shift_image(_TRANSFORMS[transform](img) / gain, shift)
    return np.ascontiguousarray(img, dtype=np.float32)


# a true axis gives a dip ≥ 5.7 % below the median mismatch on the bundled noisy scan (6 offsets, 16 rows);
# a spurious local minimum inside too narrow a range only 1.3 %
MIN_CENTER_DEPTH = 0.03
HIGHPASS_SIGMA_PX = 4.0  # Gaussian σ of the slow part removed before the opposite-projection match


def _opposite_mismatch(first: np.ndarray, mirrored: np.ndarray, shifts: np.ndarray) -> np.ndarray:
    """Mean squared difference between ``first`` and ``mirrored`` moved by each of ``shifts`` (px)
    along the detector (last axis), linear interpolation, over the columns both cover."""
    n = first.shape[-1]
    cols = np.arange(n, dtype=float)
    out = np.empty(len(shifts))
    for k, t in enumerate(shifts):
        lo, hi = int(np.ceil(max(0.0, t))) + 1, int(np.floor(min(n - 1.0, n - 1.0 + t))) - 1
        src = cols[lo : hi + 1] - t  # mirrored(s − t)
        i0 = np.floor(src).astype(int)
        w = (src - i0)[None]
        if len(i0) and np.all(w == w[0, 0]) and i0[-1] + 1 <= n - 1 and np.all(np.diff(i0) == 1):
            # the usual case (a shift on the 0.5-px centre grid: one fraction w for every column): the
            # same arithmetic on two slices (views) instead of two gathered copies, ≈ 10× faster
            a, weight = int(i0[0]), float(w[0, 0])
            if weight == 0.0:  # a whole-pixel shift: m·1 + m'·0 is m itself (the sinogram is finite)
                moved = mirrored[..., a : a + len(i0)]
            else:
                moved = (mirrored[..., a : a + len(i0)] * (1.0 - weight)
                         + mirrored[..., a + 1 : a + 1 + len(i0)] * weight)
        else:
            moved = mirrored[..., i0] * (1.0 - w) + mirrored[..., np.minimum(i0 + 1, n - 1)] * w
        diff = np.subtract(first[..., lo : hi + 1], moved)
        out[k] = np.mean(np.square(diff, out=diff))
    return out


def find_center(
    sinogram: np.ndarray, angles_rad: np.ndarray, method: str = "opposite", max_offset_px: float | None = None
) -> float:
    """Rotation-axis position (detector pixels) of a 180° or 360° sinogram.

    ``sinogram`` is (n_angles, n_det), or (n_angles, n_rows, n_det) to use several detector rows at
    once (recommended on noisy data: the mismatch is averaged over the rows).

    ``"opposite"`` (360° scans): the projection at θ + 180° is the mirror of the one at θ about the axis
    c, p(θ + π, s) = p(θ, 2c − s). The mean squared difference between each first-half projection and
    its mirrored opposite, moved by 2c − (n − 1), is evaluated for every c on a 0.5 px grid within
    ``max_offset_px`` of the detector middle (default n/4), then refined by a parabola through the
    minimum and its neighbours. A plain least-squares match, not whitened phase correlation: after
    Paganin the noise and the padding artefacts at the detector edges (symmetric about the middle)
    dominate whitened spectra, which then return the detector middle whatever the axis. The mean over
    all angles is subtracted from every projection first: detector-fixed stripes (rings) would otherwise
    pull the match towards the stripes' own positions; and a Gaussian-smoothed copy (σ = 4 px along the
    detector) is subtracted from every projection, since after Paganin the noise is mostly a smooth
    random offset/tilt per projection that differs between opposite projections.
    Raises ``ValueError`` when the minimum lies on the edge of the search range or is less than 3 %
    below the median mismatch (no clear match): give the centre, more rows or a larger
    ``max_offset_px``. ``"vo"``: algotom's Fourier-domain metric (Vo et al. 2014) on the first 180° of
    one row.
    """
    if np.ndim(sinogram) == 3:
        stack = np.asarray(sinogram)
        _check(stack[:, stack.shape[1] // 2], angles_rad)
        angles_rad = np.asarray(angles_rad, dtype=float)
    else:
        sinogram, angles_rad = _check(sinogram, angles_rad)
        stack = sinogram[:, None, :]
    n = stack.shape[-1]
    span = float(angles_rad.max() - angles_rad.min())
    if method == "vo":
        from algotom.prep.calculation import find_center_vo

        half = stack[angles_rad - angles_rad[0] < np.pi - 1e-9, stack.shape[1] // 2]
        return float(find_center_vo(half, ncore=1))
    if method != "opposite":
        raise ValueError(f"unknown centre method {method!r}: 'opposite' or 'vo'")
    if span < np.pi * 1.9:
        raise ValueError(
            f"angles span {np.degrees(span):.1f}°: method='opposite' needs a 360° scan; use method='vo'"
        )
    in_first = angles_rad - angles_rad[0] < np.pi - 1e-9
    opposite_index = [int(np.argmin(np.abs(angles_rad - (a + np.pi)))) for a in angles_rad[in_first]]
    middle = (n - 1) / 2.0
    reach = n / 4.0 if max_offset_px is None else float(max_offset_px)
    centers = middle + np.arange(-reach, reach + 0.25, 0.5)
    from scipy.ndimage import gaussian_filter1d

    cost = np.zeros(len(centers))
    for row in range(stack.shape[1]):  # one detector row at a time: memory of one sinogram
        sino = np.asarray(stack[:, row, :], dtype=np.float64)
        # detector-fixed structure (gain changes, bad columns: stripes in every projection) would pull
        # the match towards mirroring each stripe onto itself; the mean over all angles holds it
        sino = sino - sino.mean(axis=0, keepdims=True)
        # after Paganin, noise is mostly a smooth random offset/tilt per projection, different in the
        # opposite one: keep the edges (high-pass along the detector)
        sino -= gaussian_filter1d(sino, HIGHPASS_SIGMA_PX, axis=-1, mode="nearest")
        cost += _opposite_mismatch(sino[in_first], sino[opposite_index][:, ::-1], 2.0 * centers - (n - 1))
    k = int(np.argmin(cost))
    if k == 0 or k == len(centers) - 1:
        raise ValueError(
            f"centre search failed: the best match lies at the edge of the range {centers[0]:.1f}–"
            f"{centers[-1]:.1f} px; pass the centre explicitly (--center PIXELS) or a larger max_offset_px"
        )
    depth = 1.0 - cost[k] / np.median(cost)
    if depth < MIN_CENTER_DEPTH:
        raise ValueError(
            f"centre search failed: no clear best match (the minimum is only {100 * depth:.1f} % below the "
            f"median mismatch over {centers[0]:.1f}–{centers[-1]:.1f} px); pass the centre explicitly "
            "(--center PIXELS), use more detector rows, or a larger max_offset_px"
        )
    c0, c1, c2 = cost[k - 1 : k + 2]
    curvature = c0 - 2.0 * c1 + c2
    step = 0.5 * (c0 - c2) / curvature if curvature > 0 else 0.0
    return float(centers[k] + 0.5 * np.clip(step, -1.0, 1.0))


def nrmse(image: np.ndarray, truth: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Root-mean-square error normalised by the truth's range (max − min), inside ``mask``."""
    image, truth = np.asarray(image, float), np.asarray(truth, float)
    if mask is None:
        mask = np.ones(truth.shape, bool)
    return float(np.sqrt(np.mean((image[mask] - truth[mask]) ** 2)) / (truth[mask].max() - truth[mask].min()))


def gain(image: np.ndarray, truth: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Least-squares scale between a reconstruction and the truth: Σ image·truth / Σ truth²."""
    image, truth = np.asarray(image, float), np.asarray(truth, float)
    if mask is None:
        mask = np.ones(truth.shape, bool)
    return float(np.sum(image[mask] * truth[mask]) / np.sum(truth[mask] ** 2))


def disk_mask(n: int, radius_fraction: float = 0.45) -> np.ndarray:
    """Boolean mask of the reconstruction circle (radius ``radius_fraction · n``)."""
    y, x = np.mgrid[0:n, 0:n] - (n - 1) / 2.0
    return np.hypot(x, y) < radius_fraction * n
