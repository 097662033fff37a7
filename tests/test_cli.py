import os
import subprocess
import sys

from diffusion_app.core.metadata import parse_parameters, read_parameters
from running_app import REPO_ROOT


def run_cli(*args, models_dir, data_dir):
    env = {**os.environ, "DS_MODELS_DIR": str(models_dir), "DS_DATA_DIR": str(data_dir), "DS_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "diffusion_app", *args], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=300)


def test_models_lists_catalog_with_offline_availability(models_dir, tmp_path):
    result = run_cli("models", models_dir=models_dir, data_dir=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = {line.split()[0]: line for line in result.stdout.splitlines()}
    assert "offline" in lines["tiny-ddpm"]
    assert "needs network" in lines["google/ddpm-cat-256"]


def test_generate_writes_pngs_with_parameters(models_dir, tmp_path):
    out = tmp_path / "out"
    result = run_cli("generate", "--model", "tiny-ddpm", "--steps", "3", "--seed", "5", "--num-images", "2",
                     "--out", str(out), models_dir=models_dir, data_dir=tmp_path)
    assert result.returncode == 0, result.stderr
    files = sorted(out.glob("*.png"))
    assert [f.name for f in files] == ["tiny-ddpm-5.png", "tiny-ddpm-6.png"]
    assert parse_parameters(read_parameters(files[1]))["Seed"] == "6"


def test_errors_are_one_clear_line(models_dir, tmp_path):
    result = run_cli("generate", "--model", "google/ddpm-cat-256", "--steps", "3", "--out", str(tmp_path),
                     models_dir=models_dir, data_dir=tmp_path)
    assert result.returncode == 2
    assert "error: Model 'google/ddpm-cat-256' is not available" in result.stderr
    assert "Traceback" not in result.stderr
    result = run_cli("generate", "--model", "tiny-ddpm", "--steps", "0", "--out", str(tmp_path),
                     models_dir=models_dir, data_dir=tmp_path)
    assert result.returncode == 2 and "Steps must be a whole number from 1 to 1000" in result.stderr


def test_generate_draws_the_classes_asked_for_with_the_cfg_scale(models_dir, tmp_path):
    out = tmp_path / "out"
    result = run_cli("generate", "--model", "tiny-digits", "--classes", "3", "7", "--cfg-scale", "2", "--steps", "3",
                     "--seed", "1", "--scheduler", "DDIM", "--out", str(out), models_dir=models_dir, data_dir=tmp_path)
    assert result.returncode == 0, result.stderr
    files = sorted(out.glob("*.png"))
    assert [f.name for f in files] == ["tiny-digits-3-1.png", "tiny-digits-7-2.png"]
    parameters = parse_parameters(read_parameters(files[1]))
    assert parameters["Class"] == "7" and parameters["CFG scale"] == "2"
