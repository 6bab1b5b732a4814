"""Nano-CT forward model: line integrals, Fresnel propagation, flats/darks, rings, noise, NXtomo files.

Geometry convention (the one :mod:`helpers.nanoct.recon` returns for every backend)
----------------------------------------------------------------------------------
An image ``f[row, col]`` has ``x = col − (N−1)/2`` and ``y = row − (N−1)/2`` (pixels). Detector pixel
``i`` sits at ``s = i − (N_det−1)/2``. The projection at angle θ is
``p(θ, s) = ∫ f(x, y) δ(x cos θ + y sin θ − s) dx dy``; θ is measured from +x towards +y. Volumes are
``(z, y, x)`` with z the rotation axis, projections ``(n_angles, z, s)``.

Physics
-------
Transmission of the object T = exp(−k B) · exp(−i k D) with B = ∫β dt, D = ∫δ dt (m), k = 2π/λ.
Propagation over the effective distance z (cone beam: z_eff = z₁z₂/(z₁+z₂), pixel divided by the
magnification M = (z₁+z₂)/z₁, see :func:`cone_beam_effective`) multiplies the Fourier transform of
the wave by exp(−iπλz|u|²). The detector records ``gain · (beam · |ψ_z|²)`` as Poisson counts plus a
dark level; flats are the same without the object. Rings come from a per-pixel gain that changed
between the flat and the projection acquisitions (``ring_sigma``): that part does not cancel in the
flat-field correction.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from helpers.instrument import HC_KEV_M  # h·c (keV·m) from scipy.constants


def wavelength_m(energy_kev: float) -> float:
    """X-ray wavelength λ = hc/E (m)."""
    return HC_KEV_M / energy_kev


def cone_beam_effective(z1_m: float, z2_m: float, detector_pixel_m: float) -> dict[str, float]:
    """Effective parallel-beam geometry of a point-source (cone-beam) set-up (Fresnel scaling theorem).

    ``z1_m`` focus-to-sample, ``z2_m`` sample-to-detector; returns the magnification
    M = (z₁+z₂)/z₁, the effective propagation distance z_eff = z₁z₂/(z₁+z₂) = z₂/M (m) and the
    effective pixel (detector pixel / M, m).
    """
    if z1_m <= 0 or z2_m <= 0:
        raise ValueError(f"distances must be positive, got z1={z1_m} m, z2={z2_m} m")
    magnification = (z1_m + z2_m) / z1_m
    return {
        "magnification": magnification,
        "z_eff_m": z1_m * z2_m / (z1_m + z2_m),
        "pixel_size_m": detector_pixel_m / magnification,
    }


# ----------------------------------------------------------------------------------------------
# line integrals
# ----------------------------------------------------------------------------------------------
def project_volume(volume: np.ndarray, angles_rad: np.ndarray, supersample: int = 2) -> np.ndarray:
    """Line integrals of a voxel volume ``(z, y, x)`` along rays at ``angles_rad``; (n_angles, z, x).

    Each ray is sampled ``supersample`` times per voxel with trilinear interpolation of the voxel
    values (values in units per voxel; the result is in units·voxel). Rays leave the cylinder
    inscribed in the (y, x) square as zero (keep the object inside it).
    """
    from scipy import ndimage

    volume = np.asarray(volume, dtype=np.float32)
    nz, ny, nx = volume.shape
    if ny != nx:
        raise ValueError(f"the volume's (y, x) cross-section must be square, got {ny}×{nx}")
    c = (nx - 1) / 2.0
    s = np.arange(nx) - c
    t = (np.arange(nx * supersample) + 0.5) / supersample - nx / 2.0
    out = np.empty((len(angles_rad), nz, nx), dtype=np.float32)
    for k, theta in enumerate(np.asarray(angles_rad, dtype=float)):
        cos, sin = np.cos(theta), np.sin(theta)
        # point on ray (s, t): x = s cos θ − t sin θ, y = s sin θ + t cos θ
        xs = s[:, None] * cos - t[None, :] * sin + c
        ys = s[:, None] * sin + t[None, :] * cos + c
        for z in range(nz):
            vals = ndimage.map_coordinates(volume[z], [ys.ravel(), xs.ravel()], order=1, mode="constant")
            out[k, z] = vals.reshape(nx, -1).sum(axis=1) / supersample
    return out


@dataclass
class Ellipse:
    """A uniform ellipse (pixels): centre (x0, y0), semi-axes (a, b), rotation φ (rad), value."""

    x0: float
    y0: float
    a: float
    b: float
    phi: float
    value: float


def ellipse_sinogram(ellipses: list[Ellipse], angles_rad: np.ndarray, n_det: int) -> np.ndarray:
    """Exact line integrals of a sum of uniform ellipses, (n_angles, n_det) (value·pixel).

    For an ellipse centred at the origin with semi-axes a, b the chord at signed distance s along the
    direction at angle θ' (relative to the ellipse axes) is 2ab√(r² − s²)/r² with
    r² = a² cos²θ' + b² sin²θ'. This is exact: no pixel grid enters, so reconstructing it is free of
    the "inverse crime".
    """
    angles = np.asarray(angles_rad, dtype=float)[:, None]
    s = np.arange(n_det) - (n_det - 1) / 2.0
    sino = np.zeros((angles.shape[0], n_det))
    for e in ellipses:
        s_shift = s[None, :] - (e.x0 * np.cos(angles) + e.y0 * np.sin(angles))
        th = angles - e.phi
        r2 = (e.a * np.cos(th)) ** 2 + (e.b * np.sin(th)) ** 2
        inside = np.clip(r2 - s_shift**2, 0.0, None)
        sino += e.value * 2.0 * e.a * e.b * np.sqrt(inside) / r2
    return sino


def ellipse_image(ellipses: list[Ellipse], n: int, supersample: int = 4) -> np.ndarray:
    """Pixel-averaged image of the ellipses on an n × n grid (``supersample``² points per pixel)."""
    sub = (np.arange(n * supersample) + 0.5) / supersample - 0.5 - (n - 1) / 2.0
    y, x = np.meshgrid(sub, sub, indexing="ij")
    img = np.zeros_like(x)
    for e in ellipses:
        xr = (x - e.x0) * np.cos(e.phi) + (y - e.y0) * np.sin(e.phi)
        yr = -(x - e.x0) * np.sin(e.phi) + (y - e.y0) * np.cos(e.phi)
        img += e.value * ((xr / e.a) ** 2 + (yr / e.b) ** 2 <= 1.0)
    return img.reshape(n, supersample, n, supersample).mean(axis=(1, 3))


def powder_ellipses(
    n: int, rng: np.random.Generator | int | None = 0, n_particles: int = 60, glue_value: float = 0.4
) -> list[Ellipse]:
    """An analytic 2-D powder slice: NMC ellipses (value 1) in glue ellipses (``glue_value``) in air.

    Nothing overlaps, so the image is exactly three-valued. Sizes scale with n.
    """
    rng = np.random.default_rng(rng)
    radius_fov = 0.45 * n
    glue: list[Ellipse] = []
    for _ in range(40):
        if len(glue) == 5:
            break
        r = rng.uniform(0.06, 0.12) * n
        rho, ang = rng.uniform(0, radius_fov - r), rng.uniform(0, 2 * np.pi)
        x0, y0, phi = rho * np.cos(ang), rho * np.sin(ang), rng.uniform(0, np.pi)
        if all(np.hypot(x0 - g.x0, y0 - g.y0) > r + g.a for g in glue):
            glue.append(Ellipse(x0, y0, r, r * rng.uniform(0.5, 1), phi, glue_value))
    # particles avoid the glue blobs' and one another's bounding circles, so values never add up
    placed: list[tuple[float, float, float]] = [(g.x0, g.y0, g.a) for g in glue]
    out: list[Ellipse] = list(glue)
    tries = 0
    while len(out) < n_particles + len(glue) and tries < 20000:
        tries += 1
        a = float(np.exp(rng.normal(np.log(0.035 * n), 0.4)))
        b = a * float(np.clip(rng.normal(0.8, 0.1), 0.5, 1.0))
        rho, ang = rng.uniform(0, radius_fov - a), rng.uniform(0, 2 * np.pi)
        x0, y0 = rho * np.cos(ang), rho * np.sin(ang)
        if any(np.hypot(x0 - px, y0 - py) < a + pa + 1.0 for px, py, pa in placed):
            continue
        placed.append((x0, y0, a))
        out.append(Ellipse(x0, y0, a, b, float(rng.uniform(0, np.pi)), 1.0))
    return out


# ----------------------------------------------------------------------------------------------
# propagation, detector, scan
# ----------------------------------------------------------------------------------------------
def fresnel_propagate(
    wave: np.ndarray, wavelength: float, distance_m: float, pixel_size_m: float, pad: int | None = None
) -> np.ndarray:
    """Propagate complex 2-D waves (last two axes) over ``distance_m`` (Fresnel, paraxial).

    Multiplies the Fourier transform by exp(−iπλz(u²+v²)); the wave is padded by ``pad`` pixels per
    side with its edge values (default: half the size) so the fringes do not wrap around.
    """
    wave = np.asarray(wave, dtype=np.complex128)
    ny, nx = wave.shape[-2:]
    if pad is None:
        pad = max(ny, nx) // 2
    widths = [(0, 0)] * (wave.ndim - 2) + [(pad, pad), (pad, pad)]
    padded = np.pad(wave, widths, mode="edge")
    uy = np.fft.fftfreq(padded.shape[-2], d=pixel_size_m)
    ux = np.fft.fftfreq(padded.shape[-1], d=pixel_size_m)
    kernel = np.exp(-1j * np.pi * wavelength * distance_m * (uy[:, None] ** 2 + ux[None, :] ** 2))
    out = np.fft.ifft2(np.fft.fft2(padded) * kernel)
    return out[..., pad : pad + ny, pad : pad + nx]


def pillar_mask(ny: int, nx: int) -> np.ndarray:
    """(ny, nx) mask of the pillar :func:`simulate_scan` keeps with ``cylinder``: the disk inscribed in
    the x width, radius (nx−1)/2 − 1 px about ((nx−1)/2, (nx−1)/2)."""
    yy, xx = np.mgrid[0:ny, 0:nx] - (nx - 1) / 2.0
    return np.hypot(yy, xx) <= (nx - 1) / 2.0 - 1.0


# Flat-field counts per pixel and projection that give the paper's reconstructed CNR (NMC vs air) of
# ≈ 2.3 through the workbook's chain (flat/dark → Paganin δ/β = 87 at 0.1 mm → ring filtering → FBP) on
# 128-px, 180-projection, 25 nm scans. Measured, not derived: on the 128³ phantom of the bundled 3-D
# sample (d50 0.8 µm) the CNR over three detector/noise seeds is 2.25/2.33/1.79 at 130 counts and
# 3.48/2.77/1.97 at 300; on a 48 × 128 × 128 phantom (d50 0.64 µm) the mean over three seeds is 1.69 at
# 100 counts, 2.06 at 200, 2.57 at 400, 2.98 at 800 and 2.93 at 1600. The spread between seeds is large
# (± 0.4): after Paganin's 43 px low-pass the reconstructed noise sits in few low-frequency modes, and
# above ≈ 800 counts structure (rings, beam, glue fringes) dominates that more photons do not remove.
# The raw flat-field SNR 8.8 (≈ 77 counts) gives CNR ≈ 1.6: the paper's "SNR 8.84" is 5737/649 on the
# *reconstructed* grey scale (air 4255, NMC 5737), not a raw-projection SNR.
PAPER_CNR_FLAT_COUNTS = 150.0


def counts_for_snr(snr: float, transmission_roi: float = 1.0) -> float:
    """Flat-field counts per pixel giving SNR = mean(ROI)/σ(background) on a raw projection.

    With Poisson noise, σ_bg = √I₀ in the open beam and mean(ROI) = T·I₀, so I₀ = (SNR / T)²; the
    raw-projection SNR 8.8 needs ≈ 77 counts per pixel per projection (before detector gain). This is
    *not* the paper's dose: its 8.84 is measured on the reconstruction (see ``PAPER_CNR_FLAT_COUNTS``).
    """
    if snr <= 0 or not 0 < transmission_roi <= 1:
        raise ValueError(f"snr must be > 0 and transmission_roi in (0, 1], got {snr}, {transmission_roi}")
    return (snr / transmission_roi) ** 2


@dataclass
class SimulatedScan:
    """Raw holotomography data, one entry per distance (arrays as a detector would record them).

    ``projections[k]``: (n_angles, ny, nx) uint16 counts at distance k; ``flats[k]``, ``darks[k]``:
    (n_flats, ny, nx); ``angles_rad``; ``distances_m`` (effective); ``shifts_px[k]``: the (row, col)
    shift of distance k's images relative to distance 0 (sample-stage misalignment, to be registered);
    ``truth``: the exact noise-free quantities (``delta_integral_m`` (n_angles, ny, nx), ``beta_integral_m``).
    """

    projections: list[np.ndarray]
    flats: list[np.ndarray]
    darks: list[np.ndarray]
    angles_rad: np.ndarray
    distances_m: list[float]
    pixel_size_m: float
    energy_kev: float
    shifts_px: list[tuple[float, float]]
    truth: dict = field(default_factory=dict)
    params: dict = field(default_factory=dict)


def simulate_scan(
    delta_volume: np.ndarray,
    beta_volume: np.ndarray,
    angles_rad: np.ndarray,
    voxel_size_m: float = 25e-9,
    energy_kev: float = 29.6,
    distances_m: tuple[float, ...] = (2e-4,),
    flat_counts: float | None = None,
    snr: float | None = None,
    n_flats: int = 10,
    n_darks: int = 5,
    dark_level: float = 100.0,
    read_noise: float = 2.0,
    beam_nonuniformity: float = 0.15,
    gain_sigma: float = 0.02,
    ring_sigma: float = 0.004,
    n_bad_columns: int = 3,
    max_shift_px: float = 2.0,
    rng: np.random.Generator | int | None = 0,
    noise: bool = True,
    cylinder: bool = True,
    supersample: int = 1,
) -> SimulatedScan:
    """Simulate a (holo)tomography scan of a δ/β volume ``(z, y, x)`` at one or more distances.

    The beam is a smooth non-uniform profile (``beam_nonuniformity`` peak-to-valley share) times
    ``flat_counts`` counts per pixel (default: :data:`PAPER_CNR_FLAT_COUNTS`, calibrated so the
    reconstructed CNR is the paper's ≈ 2.3; or :func:`counts_for_snr` of a raw ``snr`` if given).
    Detector gain ``1 + N(0, gain_sigma)`` per pixel is common to flats and projections
    (it cancels); a further ``N(0, ring_sigma)`` per-pixel gain change, plus ``n_bad_columns`` columns
    off by 3–8 %, applies to the projections only (it makes rings). Distances after the first are
    shifted by up to ``max_shift_px`` (sub-pixel, Fourier shift) to need registration. With
    ``cylinder`` the volume is cut to the cylinder inscribed in its (y, x) square (a pillar sample).
    ``supersample`` samples per voxel along each ray (see :func:`project_volume`).
    """
    from scipy import ndimage

    rng = np.random.default_rng(rng)
    angles_rad = np.asarray(angles_rad, dtype=float)
    lam = wavelength_m(energy_kev)
    k = 2.0 * np.pi / lam
    nz, ny_v, nx_v = np.shape(delta_volume)
    if cylinder:
        # the sample is a pillar: air outside the cylinder inscribed in the (y, x) square, so every
        # projection sees all of it (no inconsistent, laterally truncated data)
        inside = pillar_mask(ny_v, nx_v)[None]
        delta_volume = np.where(inside, delta_volume, 0).astype(np.float32)
        beta_volume = np.where(inside, beta_volume, 0).astype(np.float32)
    d_int = project_volume(delta_volume, angles_rad, supersample) * voxel_size_m
    b_int = project_volume(beta_volume, angles_rad, supersample) * voxel_size_m
    n_ang, ny, nx = d_int.shape
    if flat_counts is None:
        flat_counts = PAPER_CNR_FLAT_COUNTS if snr is None else counts_for_snr(snr)
    yy, xx = np.mgrid[0:ny, 0:nx]
    beam = 1.0 - beam_nonuniformity * (((xx - 0.4 * nx) / nx) ** 2 + ((yy - 0.6 * ny) / ny) ** 2) * 2.0
    beam = beam * (1.0 + 0.02 * ndimage.gaussian_filter(rng.standard_normal((ny, nx)), 4) * 4)
    gain = 1.0 + gain_sigma * rng.standard_normal((ny, nx))
    ring = 1.0 + ring_sigma * rng.standard_normal(nx)[None, :] * np.ones((ny, 1))
    for col in rng.choice(nx, size=min(n_bad_columns, nx), replace=False):
        ring[:, col] *= 1.0 + rng.choice([-1, 1]) * rng.uniform(0.03, 0.08)

    def record(intensity: np.ndarray, extra_gain: np.ndarray | float = 1.0) -> np.ndarray:
        expected = flat_counts * beam * gain * extra_gain * intensity
        counts = rng.poisson(np.clip(expected, 0, None)) if noise else expected
        counts = counts + dark_level + (read_noise * rng.standard_normal(counts.shape) if noise else 0.0)
        return np.clip(np.round(counts), 0, 65535).astype(np.uint16)

    projections, flats, darks, shifts = [], [], [], []
    wave = np.exp(-k * b_int - 1j * k * d_int)
    for j, z in enumerate(distances_m):
        shift = (0.0, 0.0) if j == 0 else tuple(rng.uniform(-max_shift_px, max_shift_px, size=2))
        w = wave
        if j > 0:
            w = np.fft.ifft2(
                ndimage.fourier_shift(np.fft.fft2(wave, axes=(-2, -1)), (0, *shift)), axes=(-2, -1)
            )
        intensity = np.abs(fresnel_propagate(w, lam, z, voxel_size_m)) ** 2 if z > 0 else np.abs(w) ** 2
        projections.append(record(intensity, ring))
        flats.append(record(np.ones((n_flats, ny, nx))))
        darks.append(record(np.zeros((n_darks, ny, nx))))
        shifts.append(shift)
    return SimulatedScan(
        projections=projections,
        flats=flats,
        darks=darks,
        angles_rad=angles_rad,
        distances_m=list(distances_m),
        pixel_size_m=voxel_size_m,
        energy_kev=energy_kev,
        shifts_px=shifts,
        truth={"delta_integral_m": d_int, "beta_integral_m": b_int, "beam": beam, "ring_gain": ring},
        params={
            "flat_counts": float(flat_counts),
            "snr_target": snr,
            "gain_sigma": gain_sigma,
            "ring_sigma": ring_sigma,
            "n_bad_columns": n_bad_columns,
            "dark_level": dark_level,
            "read_noise": read_noise,
        },
    )


def write_nxtomo(path: str | Path, scan: SimulatedScan, distance_index: int | None = None) -> Path:
    """Write ``scan`` as NXtomo HDF5: one entry per distance (``entry0000``, …), flats/darks in the stack.

    Each entry holds ``instrument/detector/{data, image_key, x_pixel_size, y_pixel_size, distance}``,
    ``sample/rotation_angle`` (deg), ``instrument/beam/incident_energy`` (keV) and an NXdata group
    ``data`` linking them, like nxtomomill's output for ESRF scans. Stack order: darks, flats, the
    projections, then a second half of the flats (image_key 2, 1, 0, 1).
    """
    import h5py

    path = Path(path)
    indices = range(len(scan.distances_m)) if distance_index is None else [distance_index]
    with h5py.File(path, "w") as f:
        f.attrs["default"] = "entry0000"
        for j in indices:
            proj, flats, darks = scan.projections[j], scan.flats[j], scan.darks[j]
            half = len(flats) // 2
            stack = np.concatenate([darks, flats[:half], proj, flats[half:]])
            key = np.concatenate(
                [np.full(len(darks), 2), np.full(half, 1), np.zeros(len(proj)), np.full(len(flats) - half, 1)]
            ).astype(np.int32)
            angles_deg = np.degrees(scan.angles_rad)
            rot = np.concatenate(
                [np.zeros(len(darks) + half), angles_deg, np.full(len(flats) - half, angles_deg[-1])]
            )
            entry = f.create_group(f"entry{j:04d}")
            entry.attrs["NX_class"] = "NXentry"
            entry["definition"] = "NXtomo"
            det = entry.create_group("instrument/detector")
            entry["instrument"].attrs["NX_class"] = "NXinstrument"
            det.attrs["NX_class"] = "NXdetector"
            det.create_dataset("data", data=stack, chunks=(1, *stack.shape[1:]), compression="gzip")
            det["image_key"] = key
            det["image_key_control"] = key
            det["x_pixel_size"] = scan.pixel_size_m
            det["y_pixel_size"] = scan.pixel_size_m
            det["x_pixel_size"].attrs["units"] = "m"
            det["y_pixel_size"].attrs["units"] = "m"
            det["distance"] = scan.distances_m[j]
            det["distance"].attrs["units"] = "m"
            beam = entry.create_group("instrument/beam")
            beam["incident_energy"] = scan.energy_kev
            beam["incident_energy"].attrs["units"] = "keV"
            sample = entry.create_group("sample")
            sample.attrs["NX_class"] = "NXsample"
            sample["rotation_angle"] = rot
            sample["rotation_angle"].attrs["units"] = "degree"
            # sample-stage position per frame (m): the distance-to-distance misalignment, as motors record it
            for axis, value in (
                ("z_translation", scan.shifts_px[j][0]),
                ("x_translation", scan.shifts_px[j][1]),
            ):
                sample[axis] = np.full(len(key), value * scan.pixel_size_m)
                sample[axis].attrs["units"] = "m"
            data = entry.create_group("data")
            data.attrs["NX_class"] = "NXdata"
            data.attrs["signal"] = "data"
            data["data"] = det["data"]
            data["rotation_angle"] = sample["rotation_angle"]
            data["image_key"] = det["image_key"]
    return path
