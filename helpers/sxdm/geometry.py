"""ESRF ID01 diffractometer geometry: the scattering vector Q of every detector pixel at every rocking angle.

Convention (XSOCS / xrayutilities, WORKBOOK §2)
-----------------------------------------------
- Laboratory frame: beam along +x, z up, y completing a right-handed frame.
- Sample circles, outer to inner: ``eta`` about −y, ``phi`` about −z.
- Detector circles, outer to inner: ``nu`` about −z, ``delta`` about −y (positive ``delta`` moves the
  detector up, i.e. the vertical scattering plane of ID01).
- Detector face: perpendicular to the beam at zero detector angles, at ``distance_m`` from the sample.
  Detector rows (first array index) run along −z, columns along +y; the direct beam at all angles zero
  hits pixel ``beam_center_px = (row, col)`` of the full detector (BLISS ``beam_center_y``,
  ``beam_center_x``). This is what XSOCS passes to ``Ang2Q.init_area("z-", "y+", cch1=row, cch2=col)``.
- Q = k_f − k_i (Å⁻¹, |k| = 2π/λ), expressed in the **sample frame** (lab vector rotated back by the
  sample circles), which is what ``Ang2Q.area`` returns for ``HXRD([1, 0, 0], [0, 0, 1])``.

Paper's peak-frame axes (Fig. S1): X = rocking direction, Y = along the Debye ring, Z = along 2θ
(the direction of Q itself, so Z carries d = 2π/|Q|). :func:`peak_frame_axes` builds them.

Public API (stable; other modules code against it)
--------------------------------------------------
``pixel_q_vectors(eta_deg, phi_deg, nu_deg, delta_deg, wavelength_m, distance_m, pixel_size_m,
beam_center_px, detector_shape, roi=None) -> ndarray (n_eta, ny, nx, 3) float64, 1/Å, sample frame``
``q_at_detector_coordinates(eta_deg, row_px, col_px, phi_deg, nu_deg, delta_deg, wavelength_m,
distance_m, pixel_size_m, beam_center_px)`` (fractional pixels, broadcasting),
``rotation_matrix(axis, angle_deg)``, ``sample_rotation(eta_deg, phi_deg)``,
``detector_rotation(nu_deg, delta_deg)``, ``d_from_q(q)``, ``q_from_d(d)``,
``peak_frame_axes(q_ref, phi_deg=0.0)``, ``wavelength_from_energy_m(energy_kev)``,
``energy_from_wavelength_kev(wavelength_m)``, ``detector_angles_for_d(d_angstrom, wavelength_m)``.
"""

from __future__ import annotations

import numpy as np

from helpers.instrument import HC_KEV_M  # h·c (keV·m) from scipy.constants

_AXES = {"x": 0, "y": 1, "z": 2}


def rotation_matrix(axis: str, angle_deg) -> np.ndarray:
    """Rotation matrices for xrayutilities-style axis names (``"y-"``, ``"z+"``, ...).

    Parameters
    ----------
    axis : str
        Axis letter and sense, e.g. ``"y-"`` (a positive angle turns left-handed about +y).
    angle_deg : float or array_like
        Angle(s) in degrees.

    Returns
    -------
    ndarray, shape ``angle.shape + (3, 3)``
    """
    if len(axis) != 2 or axis[0] not in _AXES or axis[1] not in "+-":
        raise ValueError(f"rotation axis {axis!r} is not one of x+, x-, y+, y-, z+, z-")
    angle = np.radians(np.asarray(angle_deg, dtype=np.float64))
    if axis[1] == "-":
        angle = -angle
    c, s = np.cos(angle), np.sin(angle)
    i = _AXES[axis[0]]
    j, k = (i + 1) % 3, (i + 2) % 3
    mat = np.zeros(angle.shape + (3, 3))
    mat[..., i, i] = 1.0
    mat[..., j, j] = c
    mat[..., k, k] = c
    mat[..., k, j] = s
    mat[..., j, k] = -s
    return mat


def sample_rotation(eta_deg, phi_deg) -> np.ndarray:
    """Sample-to-lab rotation R = R_eta(y−) · R_phi(z−) (shape ``(..., 3, 3)``)."""
    return rotation_matrix("y-", eta_deg) @ rotation_matrix("z-", phi_deg)


def detector_rotation(nu_deg, delta_deg) -> np.ndarray:
    """Detector-arm rotation R = R_nu(z−) · R_delta(y−) (shape ``(..., 3, 3)``)."""
    return rotation_matrix("z-", nu_deg) @ rotation_matrix("y-", delta_deg)


def _as_per_eta(values, n_eta: int, name: str) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim == 0:
        return np.full(n_eta, float(arr))
    if arr.shape != (n_eta,):
        raise ValueError(f"{name} has shape {arr.shape}; give a scalar or one value per eta ({n_eta},)")
    return arr


def check_roi(roi, detector_shape) -> tuple[int, int, int, int]:
    """``roi`` (row0, row1, col0, col1) as ints inside ``detector_shape`` (``None`` = whole detector)."""
    n_rows, n_cols = (int(n) for n in detector_shape)
    if roi is None:
        return 0, n_rows, 0, n_cols
    if len(roi) != 4:
        raise ValueError(f"roi {roi!r} must be (row0, row1, col0, col1) of the full detector")
    r0, r1, c0, c1 = (int(v) for v in roi)
    if not (0 <= r0 < r1 <= n_rows and 0 <= c0 < c1 <= n_cols):
        raise ValueError(
            f"roi {roi!r} does not fit the detector of shape {(n_rows, n_cols)}: need "
            "0 <= row0 < row1 <= rows and 0 <= col0 < col1 <= cols"
        )
    return r0, r1, c0, c1


def pixel_q_vectors(
    eta_deg,
    phi_deg,
    nu_deg,
    delta_deg,
    wavelength_m: float,
    distance_m: float,
    pixel_size_m,
    beam_center_px,
    detector_shape,
    roi=None,
) -> np.ndarray:
    """Scattering vector Q of every pixel at every rocking angle, in the sample frame.

    Parameters
    ----------
    eta_deg : array_like, shape (n_eta,)
        Rocking angles (deg).
    phi_deg, nu_deg, delta_deg : float or array_like (n_eta,)
        Other circles (deg), one value or one per eta.
    wavelength_m, distance_m : float
        X-ray wavelength and sample–detector distance (m).
    pixel_size_m : float or (float, float)
        Pixel size (m), one value or (along rows, along columns).
    beam_center_px : (float, float)
        (row, col) of the direct beam at all angles zero, in full-detector pixels.
    detector_shape : (int, int)
        Full detector (rows, cols).
    roi : (row0, row1, col0, col1), optional
        Half-open crop of the full detector; Q is returned for those pixels only.

    Returns
    -------
    ndarray, shape (n_eta, ny, nx, 3), float64
        (Qx, Qy, Qz) in 1/Å.
    """
    eta = np.atleast_1d(np.asarray(eta_deg, dtype=np.float64))
    if eta.ndim != 1:
        raise ValueError(f"eta_deg must be 1-D, got shape {eta.shape}")
    n_eta = eta.size
    phi = _as_per_eta(phi_deg, n_eta, "phi_deg")
    nu = _as_per_eta(nu_deg, n_eta, "nu_deg")
    delta = _as_per_eta(delta_deg, n_eta, "delta_deg")
    if not (wavelength_m > 0 and distance_m > 0):
        raise ValueError(f"wavelength_m ({wavelength_m}) and distance_m ({distance_m}) must be positive")
    pix = np.broadcast_to(np.asarray(pixel_size_m, dtype=np.float64), (2,))
    if np.any(pix <= 0):
        raise ValueError(f"pixel_size_m {pixel_size_m} must be positive")
    r0, r1, c0, c1 = check_roi(roi, detector_shape)
    row_center, col_center = (float(v) for v in beam_center_px)

    k = 2.0 * np.pi / (wavelength_m * 1e10)
    rows = (np.arange(r0, r1) - row_center) * pix[0]
    cols = (np.arange(c0, c1) - col_center) * pix[1]
    # pixel positions at zero detector angles: rows along -z, columns along +y
    pos = np.empty((rows.size, cols.size, 3))
    pos[..., 0] = distance_m
    pos[..., 1] = cols[None, :]
    pos[..., 2] = -rows[:, None]
    unit = pos / np.linalg.norm(pos, axis=-1, keepdims=True)

    out = np.empty((n_eta, rows.size, cols.size, 3))
    det_angles = np.stack([nu, delta], axis=1)
    same_detector = np.all(det_angles == det_angles[0])
    kf_lab = None
    rot_sample_t = np.swapaxes(sample_rotation(eta, phi), -1, -2)  # lab -> sample
    for index in range(n_eta):
        if kf_lab is None or not same_detector:
            rot_det = detector_rotation(nu[index], delta[index])
            q_lab = k * (unit @ rot_det.T)
            q_lab[..., 0] -= k
            kf_lab = q_lab
        out[index] = kf_lab @ rot_sample_t[index].T
    return out


def q_at_detector_coordinates(
    eta_deg,
    row_px,
    col_px,
    phi_deg,
    nu_deg,
    delta_deg,
    wavelength_m: float,
    distance_m: float,
    pixel_size_m,
    beam_center_px,
) -> np.ndarray:
    """Q (1/Å, sample frame) at fractional full-detector pixel coordinates; all angle/pixel inputs broadcast.

    Same convention as :func:`pixel_q_vectors` (which it reproduces at integer pixels); used to invert
    the geometry (find where a given Q lands on the detector and in eta).
    """
    eta, row, col, phi, nu, delta = np.broadcast_arrays(
        *(np.asarray(v, dtype=np.float64) for v in (eta_deg, row_px, col_px, phi_deg, nu_deg, delta_deg))
    )
    pix = np.broadcast_to(np.asarray(pixel_size_m, dtype=np.float64), (2,))
    k = 2.0 * np.pi / (wavelength_m * 1e10)
    pos = np.stack(
        [
            np.full(row.shape, float(distance_m)),
            (col - beam_center_px[1]) * pix[1],
            -(row - beam_center_px[0]) * pix[0],
        ],
        axis=-1,
    )
    unit = pos / np.linalg.norm(pos, axis=-1, keepdims=True)
    q_lab = k * np.einsum("...ij,...j->...i", detector_rotation(nu, delta), unit)
    q_lab[..., 0] -= k
    return np.einsum("...ji,...j->...i", sample_rotation(eta, phi), q_lab)


def d_from_q(q) -> np.ndarray:
    """d-spacing 2π/|Q| (Å) of Q vectors (last axis of length 3, 1/Å) or of |Q| values."""
    q = np.asarray(q, dtype=np.float64)
    norm = np.linalg.norm(q, axis=-1) if q.ndim and q.shape[-1] == 3 else np.abs(q)
    with np.errstate(divide="ignore"):
        return 2.0 * np.pi / norm


def q_from_d(d_angstrom) -> np.ndarray:
    """|Q| = 2π/d (1/Å)."""
    return 2.0 * np.pi / np.asarray(d_angstrom, dtype=np.float64)


def wavelength_from_energy_m(energy_kev: float) -> float:
    """λ = hc/E (m) from photon energy (keV)."""
    if energy_kev <= 0:
        raise ValueError(f"energy {energy_kev} keV must be positive")
    return HC_KEV_M / energy_kev


def energy_from_wavelength_kev(wavelength_m: float) -> float:
    """E = hc/λ (keV) from wavelength (m)."""
    if wavelength_m <= 0:
        raise ValueError(f"wavelength {wavelength_m} m must be positive")
    return HC_KEV_M / wavelength_m


def detector_angles_for_d(d_angstrom: float, wavelength_m: float) -> tuple[float, float]:
    """Symmetric vertical Bragg geometry for spacing ``d``: returns (eta = θ, delta = 2θ) in degrees.

    With nu = phi = 0, eta = θ and delta = 2θ put Q of planes normal to the sample z axis on the
    detector pixel ``beam_center_px`` (the central ray).
    """
    ratio = wavelength_m * 1e10 / (2.0 * d_angstrom)
    if not 0 < ratio < 1:
        raise ValueError(f"λ/2d = {ratio:.4g}: no Bragg reflection for d = {d_angstrom} Å")
    theta = np.degrees(np.arcsin(ratio))
    return float(theta), float(2 * theta)


def peak_frame_axes(q_ref, phi_deg: float = 0.0) -> np.ndarray:
    """The paper's X, Y, Z axes (rows of a 3×3 matrix) around a reference Q vector (sample frame).

    Z = Q/|Q| (along 2θ, carries d); X = rocking direction, the motion of Q under a small eta rotation
    (eta axis × Z, perpendicular to Z); Y = Z × X (along the Debye ring). Project ``q - q_ref`` on the
    rows to get (ΔQx, ΔQy, ΔQz) of Fig. S1.
    """
    q_ref = np.asarray(q_ref, dtype=np.float64)
    if q_ref.shape != (3,) or not np.all(np.isfinite(q_ref)) or np.linalg.norm(q_ref) == 0:
        raise ValueError(f"q_ref must be a finite non-zero 3-vector, got {q_ref!r}")
    z_axis = q_ref / np.linalg.norm(q_ref)
    # eta turns about -y of the lab; in the sample frame that axis is R_phi^T (-y)
    eta_axis = rotation_matrix("z-", phi_deg).T @ np.array([0.0, -1.0, 0.0])
    x_axis = np.cross(eta_axis, z_axis)
    norm = np.linalg.norm(x_axis)
    if norm < 1e-12:
        raise ValueError("q_ref is parallel to the eta axis: the rocking direction is undefined")
    x_axis /= norm
    y_axis = np.cross(z_axis, x_axis)
    return np.stack([x_axis, y_axis, z_axis])
