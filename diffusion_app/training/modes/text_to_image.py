"""Mode "text-to-image": a UNet2DConditionModel trained against a Stable Diffusion pipeline's frozen VAE,
tokenizer and text encoder, fine-tuned from that pipeline's UNet or built from scratch (unet_from_scratch,
with block_out_channels and layers_per_block), as diffusers' train_text_to_image.py does. Saved as a
complete StableDiffusionPipeline folder: the trained UNet with the base's other components."""

from __future__ import annotations

from pathlib import Path

import torch
from accelerate import Accelerator
from diffusers import DDPMScheduler, StableDiffusionPipeline, UNet2DConditionModel

from ..config import TrainingConfig
from .latent_diffusion import LatentDiffusionData, latent_diffusion_loss, load_base, sample_grid, weight_dtype


def build_conditional_unet(config: TrainingConfig, base: StableDiffusionPipeline) -> UNet2DConditionModel:
    """A new UNet in Stable Diffusion's layout (cross-attention at every level but the lowest) for the base's
    latents and text embeddings."""
    levels = len(config.block_out_channels)
    latent_size = config.resolution // base.vae_scale_factor
    if latent_size % 2 ** (levels - 1):
        raise ValueError(f"Latents of {latent_size}x{latent_size} cannot be halved {levels - 1} times: choose a "
                         f"resolution that is a multiple of {base.vae_scale_factor * 2 ** (levels - 1)}.")
    return UNet2DConditionModel(
        sample_size=latent_size,
        in_channels=base.vae.config.latent_channels,
        out_channels=base.vae.config.latent_channels,
        block_out_channels=tuple(config.block_out_channels),
        layers_per_block=config.layers_per_block,
        down_block_types=("CrossAttnDownBlock2D",) * (levels - 1) + ("DownBlock2D",),
        up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * (levels - 1),
        cross_attention_dim=base.text_encoder.config.hidden_size,
        attention_head_dim=8,
        norm_num_groups=min(32, config.block_out_channels[0]),
    )


class TextToImageMode:
    def __init__(self, config: TrainingConfig, accelerator: Accelerator):
        self.config = config
        self.base = load_base(config.pretrained_model, with_unet=not config.unet_from_scratch)
        self.noise_scheduler = DDPMScheduler.from_config(self.base.scheduler.config,
                                                         prediction_type=config.prediction_type)
        self.model = build_conditional_unet(config, self.base) if config.unet_from_scratch else self.base.unet
        self.base.unet = None  # the trained UNet lives on as self.model only
        for frozen in (self.base.vae, self.base.text_encoder):
            frozen.requires_grad_(False).to(accelerator.device, weight_dtype(accelerator))
        self.data = LatentDiffusionData(config, self.base, accelerator.device, cache_text=True)
        self.dataset = self.data.dataset

    def trainable_parameters(self) -> list[torch.nn.Parameter]:
        return list(self.model.parameters())

    def describe(self) -> dict:
        return self.data.describe()

    def loss(self, unet, batch: dict) -> torch.Tensor:
        caption_ids = self.data.dropped_caption_ids(batch, self.config.caption_dropout_prob)
        states = self.data.embeddings[caption_ids.cpu()].to(batch["latent_mean"].device)
        return latent_diffusion_loss(unet, self.noise_scheduler, self.data.latents(batch), states, self.config.snr_gamma)

    def sample_grid(self, unet):
        return sample_grid(self.config, self.base, unet, self.base.text_encoder, self.data.captions[1:])

    def save(self, unet: UNet2DConditionModel, output_dir: Path) -> Path:
        """The trained UNet in a copy of the base pipeline, its frozen parts reloaded in the saved precision."""
        dtype = torch.float16 if self.config.save_precision == "fp16" else torch.float32
        pipeline = StableDiffusionPipeline.from_pretrained(self.config.pretrained_model, unet=unet.to(dtype),
                                                           dtype=dtype, safety_checker=None,
                                                           requires_safety_checker=False)
        folder = output_dir / "pipeline"
        pipeline.save_pretrained(folder, safe_serialization=True)
        return folder
