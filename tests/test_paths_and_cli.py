"""Path helpers, figure saving, and the command line."""

import subprocess
import sys

import matplotlib.pyplot as plt
import pytest

import helpers
from helpers import paths
from helpers.cli import main


def test_save_figure_writes_into_the_redirected_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("NMC_FIGURES_DIR", str(tmp_path / "figs"))
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    assert helpers.save_figure(fig, "fig1c_d_spacing") is None
    plt.close(fig)
    assert (tmp_path / "figs" / "fig1c_d_spacing.png").stat().st_size > 1000


def test_save_figure_rejects_path_like_names():
    fig = plt.figure()
    with pytest.raises(ValueError, match="plain file stem"):
        helpers.save_figure(fig, "../escape")
    plt.close(fig)


def test_unwritable_figure_folder_gives_a_clear_error(tmp_path, monkeypatch):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("NMC_FIGURES_DIR", str(blocker / "figs"))
    with pytest.raises(OSError, match="NMC_FIGURES_DIR"):
        paths.figures_dir()


def test_missing_sample_folder_and_file_say_what_to_run(tmp_path, monkeypatch):
    monkeypatch.setenv("NMC_DATA_SAMPLES", str(tmp_path / "nowhere"))
    with pytest.raises(FileNotFoundError, match="NMC_DATA_SAMPLES"):
        paths.data_samples_dir()
    monkeypatch.setenv("NMC_DATA_SAMPLES", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="make data"):
        paths.data_sample("missing.h5")


def test_data_samples_found_from_any_working_directory(tmp_path, monkeypatch):
    monkeypatch.delenv("NMC_DATA_SAMPLES", raising=False)
    monkeypatch.chdir(tmp_path)
    assert (paths.data_samples_dir() / "README.md").exists()


def test_setup_applies_the_style_without_import_side_effects():
    import matplotlib as mpl

    code = "import matplotlib as mpl, helpers; print(mpl.rcParams['image.origin'])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "upper"  # importing helpers changed nothing
    with mpl.rc_context():
        helpers.setup()
        assert mpl.rcParams["image.origin"] == "lower"


def test_cli_version_and_versions(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert helpers.__version__ in capsys.readouterr().out
    assert main(["versions"]) == 0
    assert "numpy" in capsys.readouterr().out


def test_console_script_is_installed():
    out = subprocess.run(
        [sys.executable, "-m", "helpers.cli", "--help"], capture_output=True, text=True, check=True
    )
    assert "reproduce" in out.stdout and "data" in out.stdout


def test_reproduce_rejects_a_selection_that_matches_nothing():
    assert main(["reproduce", "no-such-notebook"]) == 2
