"""Shared fixtures: tiny random-weight pipelines saved with save_pretrained, and a running app."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from diffusion_app.demo_clip import build_tiny_clip
from diffusion_app.demo_model import build_class_conditional_pipeline, build_ddpm_pipeline
from diffusion_app.service.studio import Studio
from diffusion_app.tiny_sd import build_tiny_sd_pipeline
from diffusion_app.settings import Settings
from diffusion_app.training.config import TrainingConfig
from diffusion_app.training.train import train
from running_app import running_app
from text_training_data import squares_folder

TINY_MODEL = "tiny-ddpm"
TINY_SD_MODEL = "tiny-sd"
TINY_LCM_LORA = "tiny-sd-lcm"
TINY_TAESD = "tiny-sd-taesd"


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory) -> Path:
    """Tiny pipelines: unconditional RGB 16x16 and grayscale 8x8, class-conditional digits 8x8, Stable Diffusion,
    and an LCM-LoRA and a tiny autoencoder distilled from that Stable Diffusion for two steps each (enough to list
    and apply, not to draw)."""
    folder = tmp_path_factory.mktemp("models")
    build_ddpm_pipeline(folder / TINY_MODEL, sample_size=16, block_out_channels=(8, 16), seed=0)
    build_ddpm_pipeline(folder / "tiny-gray", sample_size=8, channels=1, block_out_channels=(8, 16), seed=1)
    build_class_conditional_pipeline(folder / "tiny-digits", [str(d) for d in range(10)], sample_size=8,
                                     channels=1, block_out_channels=(8, 16), seed=2)
    build_tiny_sd_pipeline(folder / TINY_SD_MODEL, seed=3)
    work = tmp_path_factory.mktemp("lcm")
    distilled = dict(train_data_dir=str(squares_folder(work / "data", count=4, size=64)),
                     pretrained_model=str(folder / TINY_SD_MODEL), resolution=64, max_train_steps=2,
                     train_batch_size=4, learning_rate=1e-2, lr_warmup_steps=0, use_ema=False, save_images_steps=0,
                     num_sample_images=1)
    shutil.move(train(TrainingConfig(mode="lcm-lora", output_dir=str(work / "run"), **distilled)),
                folder / TINY_LCM_LORA)
    shutil.move(train(TrainingConfig(mode="tiny-vae", output_dir=str(work / "tiny-vae"), tiny_vae_channels=8,
                                     **distilled)),
                folder / TINY_TAESD)
    return folder


@pytest.fixture(scope="session")
def tiny_clip(tmp_path_factory) -> tuple[Path, Path]:
    """A tiny random-weight open_clip model: (config JSON, safetensors checkpoint)."""
    return build_tiny_clip(tmp_path_factory.mktemp("clip"))


@pytest.fixture
def settings(models_dir, tmp_path) -> Settings:
    return Settings(models_dir=models_dir, data_dir=tmp_path / "data", offline=True)


@pytest.fixture
def studio(settings) -> Studio:
    return Studio(settings)


def wait_for_first_output(job, timeout: float = 60) -> list:
    """The outputs of a submitted gradio_client job once its first one has arrived (or the timeout passed)."""
    deadline = time.monotonic() + timeout
    while not job.outputs() and time.monotonic() < deadline:
        time.sleep(0.05)
    return job.outputs()


def cancel_and_wait(job, timeout: float = 60) -> None:
    """Cancel a gradio_client job, as the Stop button does, and wait until it has ended."""
    job.cancel()
    deadline = time.monotonic() + timeout
    while not job.done() and time.monotonic() < deadline:
        time.sleep(0.05)


@pytest.fixture(scope="session")
def server_url(models_dir, tiny_clip, tmp_path_factory):
    """`python app.py` in a subprocess, as a user starts it, on the tiny models and no network."""
    env = {**os.environ, "DS_MODELS_DIR": str(models_dir), "DS_DATA_DIR": str(tmp_path_factory.mktemp("data")),
           "DS_OFFLINE": "1", "DS_MCP_SERVER": "1", "GRADIO_ANALYTICS_ENABLED": "False",
           "DS_CLIP_CONFIGS": str(tiny_clip[0])}
    try:
        with running_app(env, tmp_path_factory.mktemp("logs") / "app.log") as url:
            yield url
    except RuntimeError as error:
        pytest.fail(str(error))
