"""What a catalog model's config files say, read without loading the model: a component's config, and the size
of the images the model was trained on (which the Text to image tab and training jobs start from)."""

from __future__ import annotations

import json
from pathlib import Path

from huggingface_hub import try_to_load_from_cache

from ...catalog import TEXT_TO_IMAGE, ModelEntry


def component_config(entry: ModelEntry, component: str) -> dict | None:
    """A component's config.json in a local pipeline folder or a hub model in the local cache; None when unknown."""
    if entry.is_local:
        path = Path(entry.source) / component / "config.json"
    else:
        cached = try_to_load_from_cache(entry.source, f"{component}/config.json")
        path = Path(cached) if isinstance(cached, str) else None
    return json.loads(path.read_text()) if path is not None and path.is_file() else None


def native_resolution(entry: ModelEntry) -> int | None:
    """The side, in pixels, of the images the model was trained on: its UNet's sample size, times the VAE's
    downsampling for a latent (text-to-image) model; None when its configs are not on this machine."""
    unet = component_config(entry, "unet")
    if unet is None:
        return None
    size = unet["sample_size"]
    size = size if isinstance(size, int) else min(size)
    if entry.kind == TEXT_TO_IMAGE:
        vae = component_config(entry, "vae") or {}
        size *= 2 ** (len(vae.get("block_out_channels", [0] * 4)) - 1)
    return size
