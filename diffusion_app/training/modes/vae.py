"""Mode "vae": a small AutoencoderKL, the image <-> latent map a latent diffusion model works in, trained
from scratch to reconstruct the images (L1) with a light KL pull of its latents toward a unit Gaussian.

block_out_channels sets the depth: n levels shrink each side 2^(n-1) times (64 px -> 16x16 latents with
three). When training ends, the latents' spread on the training images sets `scaling_factor`, so that
scaled latents have unit standard deviation, as Stable Diffusion's 0.18215 does for its VAE.

A new VAE has diffusers' 32 GroupNorm groups, one channel a group at 32 channels. Each channel is then
normalised on its own, which washes out the colour of flat areas: emoji-t2i's VAE decoded green as orange and
purple as grey-blue. vae_latents_from refits a trained VAE with groups of at least 4 channels without losing
the diffusion model trained on its latents: the new VAE starts from its weights, its decoder learns to decode
the old encoder's latents and its encoder to reproduce them (mean and spread, mean squared error), and
scaling_factor stays, as Stability AI fine-tuned Stable Diffusion's decoder while keeping its latents.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from accelerate import Accelerator
from diffusers import AutoencoderKL

from ...core.denoising import to_pil
from ...core.grid import image_grid
from ..config import TrainingConfig
from ..data import ImageDataset
from ..sources import read_items

SCALING_IMAGES = 512  # images whose latents measure the spread


def build_vae(config: TrainingConfig) -> AutoencoderKL:
    levels = len(config.block_out_channels)
    return AutoencoderKL(
        in_channels=config.channels,
        out_channels=config.channels,
        latent_channels=config.latent_channels,
        block_out_channels=tuple(config.block_out_channels),
        down_block_types=("DownEncoderBlock2D",) * levels,
        up_block_types=("UpDecoderBlock2D",) * levels,
        layers_per_block=config.layers_per_block,
        norm_num_groups=min(32, config.block_out_channels[0]),
        sample_size=config.resolution,
    )


def regrouped(vae: AutoencoderKL) -> AutoencoderKL:
    """A copy of the VAE, its weights kept, with GroupNorm groups of at least 4 channels: where a refit starts."""
    groups = max(1, min(32, vae.config.block_out_channels[0] // 4))
    copy = AutoencoderKL.from_config({**vae.config, "norm_num_groups": groups})
    copy.load_state_dict(vae.state_dict())
    return copy


class VAEMode:
    def __init__(self, config: TrainingConfig, accelerator: Accelerator):
        self.config = config
        self.dataset = ImageDataset(read_items(config), config.resolution, config.channels,
                                    center_crop=config.center_crop, random_flip=config.random_flip, seed=config.seed)
        self.teacher = None
        if config.vae_latents_from:
            self.teacher = AutoencoderKL.from_pretrained(config.vae_latents_from, torch_dtype=torch.float32)
            self.teacher.eval().requires_grad_(False).to(accelerator.device)
            self.model = regrouped(self.teacher)
        elif config.pretrained_model:
            self.model = AutoencoderKL.from_pretrained(config.pretrained_model)
        else:
            self.model = build_vae(config)

    def trainable_parameters(self) -> list[torch.nn.Parameter]:
        return list(self.model.parameters())

    def describe(self) -> dict:
        return {"images": len(self.dataset)}

    def loss(self, vae, batch: dict) -> torch.Tensor:
        pixels = batch["pixel_values"]
        posterior = vae.encode(pixels).latent_dist
        if self.teacher is None:
            reconstruction = vae.decode(posterior.sample()).sample
            return F.l1_loss(reconstruction.float(), pixels.float()) + self.config.kl_weight * posterior.kl().mean()
        with torch.no_grad():
            target = self.teacher.encode(pixels).latent_dist
        reconstruction = vae.decode(target.sample()).sample
        return (F.l1_loss(reconstruction.float(), pixels.float())
                + F.mse_loss(posterior.mean.float(), target.mean.float())
                + F.mse_loss(posterior.std.float(), target.std.float()))

    def sample_grid(self, vae):
        """Fixed training images (top row) over their reconstructions from the latent means (bottom row)."""
        count = min(8, len(self.dataset))
        pixels = torch.stack([self.dataset[i]["pixel_values"] for i in range(count)]).to(vae.device, vae.dtype)
        reconstruction = vae.decode(vae.encode(pixels).latent_dist.mean).sample
        return image_grid(to_pil(pixels.float()) + to_pil(reconstruction.float()), count)

    @torch.no_grad()
    def latent_std(self, vae) -> float:
        pixels = torch.stack([self.dataset[i]["pixel_values"] for i in range(min(SCALING_IMAGES, len(self.dataset)))])
        latents = torch.cat([vae.encode(chunk.to(vae.device, vae.dtype)).latent_dist.mean.float()
                             for chunk in pixels.split(64)])
        return latents.std().item()

    def save(self, vae: AutoencoderKL, output_dir: Path) -> Path:
        vae.eval()
        if self.teacher is None:
            vae.register_to_config(scaling_factor=1 / self.latent_std(vae))
        if self.config.save_precision == "fp16":
            vae = vae.to(torch.float16)
        folder = output_dir / "vae"
        vae.save_pretrained(folder, safe_serialization=True)
        return folder
