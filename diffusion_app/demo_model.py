"""A small random-weight DDPM pipeline that any machine can build in a second, with no download.

It lets the app start and every code path run before any trained model is present; its samples
are structured noise, not pictures. Tests build their tiny models with the same function.
"""

from __future__ import annotations

from pathlib import Path

import torch
from diffusers import DDPMPipeline, DDPMScheduler, UNet2DModel

from .catalog import UNCONDITIONAL, local_entries

DEMO_MODEL_NAME = "demo-random-32"


def build_ddpm_pipeline(
    folder: Path,
    sample_size: int = 32,
    channels: int = 3,
    block_out_channels: tuple[int, ...] = (32, 64),
    layers_per_block: int = 1,
    seed: int = 0,
) -> Path:
    """Save a random-weight DDPMPipeline with `save_pretrained`; returns the folder."""
    torch.manual_seed(seed)
    unet = UNet2DModel(
        sample_size=sample_size,
        in_channels=channels,
        out_channels=channels,
        block_out_channels=block_out_channels,
        layers_per_block=layers_per_block,
        down_block_types=("DownBlock2D",) * len(block_out_channels),
        up_block_types=("UpBlock2D",) * len(block_out_channels),
        norm_num_groups=min(8, block_out_channels[0]),
    )
    DDPMPipeline(unet=unet, scheduler=DDPMScheduler(num_train_timesteps=1000)).save_pretrained(folder)
    return Path(folder)


def ensure_offline_model(models_dirs: list[Path], target_dir: Path) -> Path | None:
    """Build the demo model into target_dir when no local unconditional model exists; returns its folder."""
    if any(entry.kind == UNCONDITIONAL for folder in models_dirs for entry in local_entries(folder)):
        return None
    return build_ddpm_pipeline(target_dir / DEMO_MODEL_NAME)
