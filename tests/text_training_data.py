"""Captioned datasets and a tiny Stable Diffusion base for the text-to-image trainer's tests: red and blue
squares, whose colour a model can learn in seconds and a test can measure."""

from __future__ import annotations

import json
from pathlib import Path

from diffusers import AutoencoderKL, StableDiffusionPipeline
from PIL import Image

from diffusion_app.tiny_sd import build_tiny_sd_pipeline
from diffusion_app.training.config import TrainingConfig
from diffusion_app.training.train import train

RED, BLUE = (220, 40, 40), (40, 40, 220)
CONCEPTS = {"a red square": RED, "a blue square": BLUE}


def squares_folder(folder: Path, count: int = 16, size: int = 32) -> Path:
    """`count` squares, alternately red and blue, captioned in a metadata.jsonl."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = []
    for index in range(count):
        caption, colour = list(CONCEPTS.items())[index % 2]
        Image.new("RGB", (size, size), colour).save(folder / f"{index:02d}.png")
        lines.append(json.dumps({"file_name": f"{index:02d}.png", "text": caption}))
    (folder / "metadata.jsonl").write_text("\n".join(lines) + "\n")
    return folder


def base_with_trained_vae(work: Path, data: Path) -> Path:
    """A tiny Stable Diffusion pipeline whose VAE was trained (by the trainer's vae mode) on the squares, so
    that colours survive the trip through latents; the tiny random VAE turns red and blue into one grey."""
    vae = train(TrainingConfig(mode="vae", train_data_dir=str(data), output_dir=str(work / "vae"), resolution=32,
                               block_out_channels=[16, 32, 32], layers_per_block=1, train_batch_size=8,
                               max_train_steps=300, learning_rate=3e-3, lr_warmup_steps=5, use_ema=False,
                               log_every_steps=50, save_images_steps=0, checkpointing_steps=1000))
    pipeline = StableDiffusionPipeline.from_pretrained(build_tiny_sd_pipeline(work / "random-base"))
    pipeline.vae = AutoencoderKL.from_pretrained(vae)
    pipeline.save_pretrained(work / "base")
    return work / "base"
