"""A tiny random-weight open_clip model that any machine can build in a second, with no download.

It runs every CLIP-guidance code path offline (tests use it); its embeddings mean nothing. The model is
a config JSON (register it with DS_CLIP_CONFIGS) and a safetensors checkpoint (enter its path as the
CLIP weights).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import save_file

import open_clip

TINY_CLIP_NAME = "tiny-random-clip"
TINY_CLIP_CONFIG = {
    "embed_dim": 16,
    "vision_cfg": {"image_size": 24, "layers": 1, "width": 32, "head_width": 16, "patch_size": 8},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}


def build_tiny_clip(folder: Path, seed: int = 0) -> tuple[Path, Path]:
    """Write the config and a random checkpoint into folder; returns (config file, checkpoint file)."""
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / f"{TINY_CLIP_NAME}.json"
    config.write_text(json.dumps(TINY_CLIP_CONFIG, indent=2))
    open_clip.add_model_config(config)
    torch.manual_seed(seed)
    model = open_clip.create_model(TINY_CLIP_NAME)
    checkpoint = folder / f"{TINY_CLIP_NAME}.safetensors"
    save_file({name: tensor.contiguous() for name, tensor in model.state_dict().items()}, checkpoint)
    return config, checkpoint
