"""`python -m diffusion_app`: once in a subprocess as a user runs it, the other commands through its `main` in this
process (the same argument parsing and error handling, without a second interpreter's imports)."""

import os
import subprocess
import sys

import pytest

from diffusion_app.__main__ import main
from diffusion_app.core.metadata import parse_parameters, read_parameters
from running_app import REPO_ROOT


@pytest.fixture
def run_cli(models_dir, tmp_path, monkeypatch, capsys):
    """Run the command line in this process on the tiny models, offline: (exit code, stdout, stderr)."""
    monkeypatch.setenv("DS_MODELS_DIR", str(models_dir))
    monkeypatch.setenv("DS_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("DS_OFFLINE", "1")

    def run(*args):
        code = main(list(args))
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


def test_models_lists_catalog_with_offline_availability(models_dir, tmp_path):
    env = {**os.environ, "DS_MODELS_DIR": str(models_dir), "DS_DATA_DIR": str(tmp_path), "DS_OFFLINE": "1"}
    result = subprocess.run([sys.executable, "-m", "diffusion_app", "models"], cwd=REPO_ROOT, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    lines = {line.split()[0]: line for line in result.stdout.splitlines()}
    assert "offline" in lines["tiny-ddpm"]
    assert "needs network" in lines["google/ddpm-cat-256"]


def test_generate_writes_pngs_with_parameters(run_cli, tmp_path):
    out = tmp_path / "out"
    code, _, err = run_cli("generate", "--model", "tiny-ddpm", "--steps", "3", "--seed", "5", "--num-images", "2",
                           "--out", str(out))
    assert code == 0, err
    files = sorted(out.glob("*.png"))
    assert [f.name for f in files] == ["tiny-ddpm-5.png", "tiny-ddpm-6.png"]
    assert parse_parameters(read_parameters(files[1]))["Seed"] == "6"


def test_errors_are_one_clear_line(run_cli, tmp_path):
    code, _, err = run_cli("generate", "--model", "google/ddpm-cat-256", "--steps", "3", "--out", str(tmp_path))
    assert code == 2
    assert "error: Model 'google/ddpm-cat-256' is not available" in err
    assert "Traceback" not in err
    code, _, err = run_cli("generate", "--model", "tiny-ddpm", "--steps", "0", "--out", str(tmp_path))
    assert code == 2 and "Steps must be a whole number from 1 to 1000" in err


def test_generate_draws_the_classes_asked_for_with_the_cfg_scale(run_cli, tmp_path):
    out = tmp_path / "out"
    code, _, err = run_cli("generate", "--model", "tiny-digits", "--classes", "3", "7", "--cfg-scale", "2",
                           "--steps", "3", "--seed", "1", "--scheduler", "DDIM", "--out", str(out))
    assert code == 0, err
    files = sorted(out.glob("*.png"))
    assert [f.name for f in files] == ["tiny-digits-3-1.png", "tiny-digits-7-2.png"]
    parameters = parse_parameters(read_parameters(files[1]))
    assert parameters["Class"] == "7" and parameters["CFG scale"] == "2"
