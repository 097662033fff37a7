"""Tiny autoencoders (TAESD) beside the cached text-to-image pipelines.

A Stable Diffusion VAE decode costs as much as several denoising steps at 512 px, so an exact preview every step
would double a run, and at 4 LCM steps the final decode is most of the time. TAESD (Ollin Boer Bohan's tiny
autoencoder, diffusers' `AutoencoderTiny`) decodes the same latents with a few small convolutions: close enough
for previews at every step, and for a final image when speed matters more than the last detail.

A tiny autoencoder is a catalog model of its own (madebyollin/taesd online, or one the trainer's tiny-vae mode
distilled), cached like a pipeline and shared by every request: decoding keeps no state. It takes the latents the
UNet works on (the VAE's scaled latents), so its scaling_factor is 1.
"""

from __future__ import annotations

import torch
from diffusers import AutoencoderTiny
from PIL import Image

from ...catalog import TINY_AUTOENCODER
from ...core.denoising import to_pil
from ..studio import Studio


def check_tiny_autoencoder(studio: Studio, name: str | None, model: str) -> None:
    """A tiny autoencoder request the model can take: a catalog tiny autoencoder made for this model's latents."""
    if not name:
        return
    entry = studio.catalog.get(name)
    if entry.kind != TINY_AUTOENCODER:
        raise ValueError(f"{name!r} is a {entry.kind} model, not a tiny autoencoder.")
    base = studio.catalog.get(model).source
    if entry.base_model != base:
        raise ValueError(f"The tiny autoencoder {name!r} decodes the latents of {entry.base_model}; choose that model "
                         f"to use it (this one is {base}).")


def tiny_autoencoder(studio: Studio, name: str) -> AutoencoderTiny:
    """The cached tiny autoencoder of this name, loaded on first use."""
    return studio.cache.get(name)


@torch.no_grad()
def tiny_decode(autoencoder: AutoencoderTiny, latents: torch.Tensor) -> list[Image.Image]:
    """Images from the UNet's latents, through the tiny decoder."""
    decoded = autoencoder.decode(latents.detach().to(autoencoder.device, autoencoder.dtype)).sample
    return to_pil(decoded.float().clamp(-1, 1).cpu())
