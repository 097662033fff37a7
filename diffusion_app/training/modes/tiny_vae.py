"""Mode "tiny-vae": a tiny autoencoder (TAESD's architecture, diffusers' AutoencoderTiny) distilled from the VAE
of a text-to-image pipeline, so that its latents decode in a fraction of the time: previews at every step, and a
fast final image.

As TAESD was made for Stable Diffusion, the student works on the latents the UNet sees (the VAE's latent means
times its scaling_factor), so it is saved with scaling_factor 1 and swaps in for the VAE as `pipe.vae`. Its
encoder learns to give those latents (mean squared error), its decoder to draw what the VAE's decoder draws from
them (L1): the teacher's output, not the training image, since it stands in for that decoder. TAESD's own
training adds adversarial and perceptual losses for detail at 512 px; at this project's sizes L1 serves.

Depth follows the teacher (n levels shrink each side 2^(n-1) times), with TAESD's block counts and, by default,
its 64 channels (tiny_vae_channels). At 64 px and 64 channels it would decode slower than emoji-t2i's narrow VAE;
its bundled one has 16 and decodes 6.6x faster than that VAE on one core.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn.functional as F
from accelerate import Accelerator
from diffusers import AutoencoderKL, AutoencoderTiny

from ...catalog import TINY_AUTOENCODER_FILE
from ...core.denoising import to_pil
from ...core.grid import image_grid
from ..config import TrainingConfig
from ..data import ImageDataset
from ..sources import read_items

TAESD_ENCODER_BLOCKS = (1, 3, 3, 3)  # per level, from the image down
TAESD_DECODER_BLOCKS = (3, 3, 3, 1)  # per level, from the latents up


def build_tiny_autoencoder(teacher: AutoencoderKL, channels: int) -> AutoencoderTiny:
    """TAESD's architecture at the teacher's depth and latent channels."""
    levels = len(teacher.config.block_out_channels)
    if levels > len(TAESD_ENCODER_BLOCKS):
        raise ValueError(f"A tiny autoencoder has at most {len(TAESD_ENCODER_BLOCKS)} levels; this VAE has {levels}.")
    return AutoencoderTiny(
        in_channels=teacher.config.in_channels,
        out_channels=teacher.config.out_channels,
        latent_channels=teacher.config.latent_channels,
        encoder_block_out_channels=(channels,) * levels,
        decoder_block_out_channels=(channels,) * levels,
        num_encoder_blocks=TAESD_ENCODER_BLOCKS[:levels],
        num_decoder_blocks=TAESD_DECODER_BLOCKS[-levels:],
    )


class TinyVAEMode:
    def __init__(self, config: TrainingConfig, accelerator: Accelerator):
        if not config.pretrained_model:
            raise ValueError("Mode tiny-vae distils the VAE of a text-to-image model: set pretrained_model.")
        self.config = config
        self.teacher = AutoencoderKL.from_pretrained(config.pretrained_model, subfolder="vae", torch_dtype=torch.float32)
        self.teacher.eval().requires_grad_(False).to(accelerator.device)
        self.dataset = ImageDataset(read_items(config), config.resolution, self.teacher.config.in_channels,
                                    center_crop=config.center_crop, random_flip=config.random_flip, seed=config.seed)
        self.model = build_tiny_autoencoder(self.teacher, config.tiny_vae_channels)

    def trainable_parameters(self) -> list[torch.nn.Parameter]:
        return list(self.model.parameters())

    def describe(self) -> dict:
        return {"images": len(self.dataset)}

    @torch.no_grad()
    def teacher_latents_and_images(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The UNet's latents of these images, and the teacher's decode of them."""
        scaling = self.teacher.config.scaling_factor
        latents = self.teacher.encode(pixels.float()).latent_dist.mean * scaling
        return latents, self.teacher.decode(latents / scaling).sample.clamp(-1, 1)

    def loss(self, student, batch: dict) -> torch.Tensor:
        latents, decoded = self.teacher_latents_and_images(batch["pixel_values"])
        encoded = student.encode(batch["pixel_values"]).latents
        drawn = student.decode(latents.to(encoded.dtype)).sample
        return F.l1_loss(drawn.float(), decoded) + F.mse_loss(encoded.float(), latents)

    def sample_grid(self, student):
        """Fixed training images (top row), the teacher's decode of their latents, the student's (bottom row)."""
        count = min(8, len(self.dataset))
        pixels = torch.stack([self.dataset[i]["pixel_values"] for i in range(count)]).to(student.device)
        latents, decoded = self.teacher_latents_and_images(pixels)
        drawn = student.decode(latents.to(student.dtype)).sample.float()
        return image_grid(to_pil(pixels.float()) + to_pil(decoded) + to_pil(drawn.clamp(-1, 1)), count)

    def save(self, student: AutoencoderTiny, output_dir: Path) -> Path:
        student.eval()
        if self.config.save_precision == "fp16":
            student = student.to(torch.float16)
        folder = output_dir / "tiny-autoencoder"
        student.save_pretrained(folder, safe_serialization=True)
        (folder / TINY_AUTOENCODER_FILE).write_text(json.dumps({
            "base_model": self.config.pretrained_model, "resolution": self.config.resolution}, indent=2))
        return folder
