"""The pip (pyproject.toml) and conda (environment.yml) environments list the same packages."""

import re

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
CONDA_ONLY = {"python", "pip", "tomopy"}


def _name_and_bound(requirement: str) -> tuple[str, str]:
    match = re.match(r"^\s*([A-Za-z0-9_.\-]+)\s*(.*)$", requirement)
    name = re.sub(r"[-_.]+", "-", match.group(1)).lower()
    return name, match.group(2).replace(" ", "")


def _pyproject_core() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return dict(_name_and_bound(r) for r in project["dependencies"])


def _environment_yml() -> tuple[dict[str, str], list[str]]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    packages, pip_lines = {}, []
    for dep in env["dependencies"]:
        if isinstance(dep, dict):
            pip_lines = dep["pip"]
            continue
        name, bound = _name_and_bound(dep.replace("=3.11", "==3.11"))
        packages[name] = bound
    for line in pip_lines:
        if not line.startswith("-e"):
            name, bound = _name_and_bound(line)
            packages[name] = bound
    return packages, pip_lines


def test_conda_and_pip_list_the_same_core_packages_with_the_same_bounds():
    core = _pyproject_core()
    conda, _ = _environment_yml()
    conda_core = {k: v for k, v in conda.items() if k not in CONDA_ONLY}
    assert sorted(conda_core) == sorted(core), (
        f"only in environment.yml: {sorted(set(conda_core) - set(core))}; "
        f"only in pyproject.toml: {sorted(set(core) - set(conda_core))}"
    )
    assert conda_core == core, "lower bounds differ between environment.yml and pyproject.toml"


def test_environment_yml_installs_the_workbook_with_its_test_extra_and_tomopy():
    conda, pip_lines = _environment_yml()
    assert "-e .[test]" in pip_lines
    assert "tomopy" in conda
    assert conda["python"] == "==3.11"


def test_every_core_package_has_a_lower_bound():
    assert all(bound.startswith(">=") for bound in _pyproject_core().values())


def test_import_rules_hold(monkeypatch):
    """The [tool.importlinter] contracts of pyproject.toml (also run by `make lint`) are kept."""
    from importlinter.application.use_cases import lint_imports
    from importlinter.configuration import configure

    configure()
    monkeypatch.chdir(ROOT)
    assert lint_imports(config_filename=str(ROOT / "pyproject.toml"), no_logo=True, cache_dir=None)
