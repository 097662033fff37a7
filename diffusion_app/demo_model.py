"""Small random-weight pipelines that any machine can build in a second, with no download.

The demo model lets the app start and every code path run before any trained model is present;
its samples are structured noise, not pictures. Tests build their tiny models with the same functions.
"""

from __future__ import annotations

from pathlib import Path

import torch
from diffusers import DDPMPipeline, DDPMScheduler, UNet2DModel

from .catalog import UNCONDITIONAL, local_entries
from .core.class_conditional import ClassConditionalPipeline

DEMO_MODEL_NAME = "demo-random-32"


def random_unet(sample_size: int = 32, channels: int = 3, block_out_channels: tuple[int, ...] = (32, 64),
                layers_per_block: int = 1, num_classes: int | None = None, seed: int = 0) -> UNet2DModel:
    torch.manual_seed(seed)
    return UNet2DModel(
        sample_size=sample_size,
        in_channels=channels,
        out_channels=channels,
        block_out_channels=block_out_channels,
        layers_per_block=layers_per_block,
        down_block_types=("DownBlock2D",) * len(block_out_channels),
        up_block_types=("UpBlock2D",) * len(block_out_channels),
        norm_num_groups=min(8, block_out_channels[0]),
        num_class_embeds=num_classes,
    )


def build_ddpm_pipeline(folder: Path, **unet_options) -> Path:
    """Save a random-weight DDPMPipeline with `save_pretrained`; returns the folder."""
    DDPMPipeline(unet=random_unet(**unet_options), scheduler=DDPMScheduler()).save_pretrained(folder)
    return Path(folder)


def build_class_conditional_pipeline(folder: Path, class_names: list[str], null_class: bool = True,
                                     **unet_options) -> Path:
    """Save a random-weight ClassConditionalPipeline with `save_pretrained`; returns the folder.
    With null_class the UNet has the extra "no class" embedding that classifier-free guidance uses."""
    unet = random_unet(num_classes=len(class_names) + null_class, **unet_options)
    ClassConditionalPipeline(unet=unet, scheduler=DDPMScheduler(), class_names=class_names).save_pretrained(folder)
    return Path(folder)


def ensure_offline_model(models_dirs: list[Path], target_dir: Path) -> Path | None:
    """Build the demo model into target_dir when no local unconditional model exists; returns its folder."""
    if any(entry.kind == UNCONDITIONAL for folder in models_dirs for entry in local_entries(folder)):
        return None
    return build_ddpm_pipeline(target_dir / DEMO_MODEL_NAME)
