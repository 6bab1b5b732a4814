"""A plain ``pip install .`` (no extras) gives working commands.

The package is built as a wheel and installed with ``--no-deps`` into a fresh virtual environment
(``python -m venv``, no system site-packages); the environment then sees exactly the distributions
that the core requirements of ``pyproject.toml`` pull in (their transitive closure, read from the
metadata of the test environment and linked into one site directory), and nothing else: no test or
bench extra (pytest, porespy, xsocs), no editable checkout. Each command then runs, from a folder
outside the checkout, on the bundled samples. Trade-off: the dependency versions are those of the test
environment, not a fresh resolution from PyPI, and no network is used: measured 24 s (2 min on a
loaded machine) against 13 min for a real ``pip install .`` from PyPI into a fresh venv on 2 shared
cores (1.4 GB installed). ``NMC_PLAIN_INSTALL_FROM_PYPI=1`` installs the wheel with its
dependencies resolved from the package index instead (the full check, network needed).
"""

import os
import subprocess
import sys
import venv
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

from importlib import metadata

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data_samples"


def core_closure() -> dict[str, metadata.Distribution]:
    """Installed distributions that the core requirements need, transitively (markers evaluated)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    todo = [Requirement(r) for r in project["dependencies"]]
    found: dict[str, metadata.Distribution] = {}
    while todo:
        req = todo.pop()
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue
        name = canonicalize_name(req.name)
        if name in found:
            continue
        try:
            dist = metadata.distribution(req.name)
        except metadata.PackageNotFoundError as err:
            raise AssertionError(f"core requirement {req} is not installed in the test environment") from err
        found[name] = dist
        todo.extend(Requirement(r) for r in dist.requires or [])
    return found


def _link_site(dists, site: Path) -> None:
    """One site directory holding links to every file/folder the distributions installed at top level."""
    site.mkdir()
    for dist in dists.values():
        base = Path(dist.locate_file(""))
        tops = {Path(f).parts[0] for f in dist.files or [] if not str(f).startswith("..")}
        for top in tops - {"__pycache__"}:
            target = site / top
            if (base / top).exists() and not target.exists():
                target.symlink_to(base / top)


def _run(cmd, cwd, env, timeout=600):
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{' '.join(map(str, cmd))}\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.mark.slow
def test_commands_run_after_a_plain_install_without_extras(tmp_path):
    """~1 min on 2 cores: venv, wheel, then sxdm-maps, sxdm-curvature, ct-reconstruct, ct-analyse."""
    from_pypi = os.environ.get("NMC_PLAIN_INSTALL_FROM_PYPI") == "1"
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True, system_site_packages=False).create(env_dir)
    python = env_dir / "bin" / "python"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    wheels = tmp_path / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", wheels, ROOT],
        check=True, capture_output=True, timeout=300,
    )
    wheel = next(wheels.glob("nmc_xray_workbook-*.whl"))
    if from_pypi:
        _run([python, "-m", "pip", "install", "-q", wheel], tmp_path, env, timeout=3000)
    else:
        _link_site(core_closure(), tmp_path / "core-site")
        site_packages = next((env_dir / "lib").glob("python3*/site-packages"))
        (site_packages / "core_dependencies.pth").write_text(
            f"import site; site.addsitedir({str(tmp_path / 'core-site')!r})\n"
        )
        _run([python, "-m", "pip", "install", "-q", "--no-deps", "--no-index", wheel], tmp_path, env)
    # the environment holds the core only: no extra, and the workbook from the wheel, not the checkout
    probe = _run([python, "-c", "import importlib.util as u, helpers; print(helpers.__file__); "
                  "print([m for m in ('pytest', 'porespy', 'xsocs') if u.find_spec(m)])"], tmp_path, env)
    assert str(ROOT) not in probe.splitlines()[0] and probe.splitlines()[1] == "[]", probe
    cli = env_dir / "bin" / "nmc-workbook"
    sxdm = DATA / "sxdm_fig1_particle" / "sxdm_fig1_particle.h5"
    out = _run([cli, "sxdm-maps", sxdm, "--out", "maps.h5", "--method", "com", "--quiet"], tmp_path, env)
    assert "40 x 40 points" in out
    out = _run([cli, "sxdm-curvature", "maps.h5", "--out", "curvature.json"], tmp_path, env)
    assert "results written" in out
    ct = DATA / "ct_powder_holotomo.h5"
    _run([cli, "ct-reconstruct", ct, "--out", "recon.h5", "--quiet"], tmp_path, env)
    out = _run([cli, "ct-analyse", "recon.h5", "--dataset", "/volume_8bit", "--out", "analysis.h5",
                "--threshold", "160"], tmp_path, env)
    assert "particles in" in out and (tmp_path / "analysis_voids.csv").is_file()
