"""What the text-to-image and LoRA modes share, as diffusers' train_text_to_image(_lora).py do it: a Stable
Diffusion pipeline's frozen VAE and text encoder, caption dropout, the (Min-SNR weighted) loss, and sample
grids from fixed prompts.

The VAE and the text encoder never change while training, so each image's latent distribution and each
distinct caption's embedding are computed once, before the first step, instead of at every step of every
epoch. A step then samples its latents from the cached mean and standard deviation, exactly as encoding
would (random flips are cached as a second latent). Only a trained text encoder (LoRA on it) is run per step.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from diffusers import DDIMScheduler, DDPMScheduler, StableDiffusionPipeline
from diffusers.training_utils import compute_snr

from ...core.grid import image_grid
from ..config import TrainingConfig
from ..data import EpochSeededDraws, ImageDataset
from ..sources import read_items
from .ddpm import diffusion_target

ENCODE_BATCH = 16
SAMPLE_PROMPTS = 4


def load_base(source: str, with_unet: bool = True) -> StableDiffusionPipeline:
    """The Stable Diffusion pipeline whose components training starts from; without its UNet when a new one
    trains (so a folder of the other components alone will do)."""
    unet = {} if with_unet else {"unet": None}
    try:
        return StableDiffusionPipeline.from_pretrained(source, safety_checker=None, requires_safety_checker=False,
                                                       **unet)
    except Exception as err:  # missing files, no network, not a Stable Diffusion pipeline
        raise ValueError(f"Could not load the Stable Diffusion pipeline {source!r}: "
                         f"{str(err).splitlines()[0] if str(err) else type(err).__name__}") from None


def weight_dtype(accelerator) -> torch.dtype:
    """Frozen models run in the mixed precision's dtype; trained weights stay float32 (accelerate autocasts)."""
    return {"fp16": torch.float16, "bf16": torch.bfloat16}.get(accelerator.mixed_precision, torch.float32)


class CachedLatents(EpochSeededDraws, torch.utils.data.Dataset):
    """Per image: its latent distribution (mean, std; also of the flipped image) and its caption's index."""

    def __init__(self, mean, std, flipped_mean, flipped_std, caption_ids: torch.Tensor, seed: int):
        self.mean, self.std, self.flipped_mean, self.flipped_std = mean, std, flipped_mean, flipped_std
        self.caption_ids = caption_ids
        self.seed = seed

    def __len__(self) -> int:
        return len(self.caption_ids)

    def __getitem__(self, index: int) -> dict:
        flip = self.flipped_mean is not None and torch.rand((), generator=self.draws_for(index)) < 0.5
        mean, std = (self.flipped_mean, self.flipped_std) if flip else (self.mean, self.std)
        return {"latent_mean": mean[index], "latent_std": std[index], "caption_ids": self.caption_ids[index]}


class LatentDiffusionData:
    """The captions, their token ids and (for a frozen text encoder) embeddings, and the cached latents."""

    def __init__(self, config: TrainingConfig, base: StableDiffusionPipeline, device, cache_text: bool):
        items = read_items(config)
        if items.captions is None or not any(items.captions):
            raise ValueError("Text-to-image training needs captions: a metadata.jsonl or .txt files beside the "
                             "images, a caption column, or an instance prompt for all of them.")
        images = ImageDataset(items, config.resolution, 3, center_crop=True)
        self.images = len(images)
        self.captioned = sum(bool(caption) for caption in items.captions)
        self.captions = ["", *sorted({caption for caption in images.captions if caption})]  # index 0: no caption
        caption_ids = torch.tensor([self.captions.index(caption) for caption in images.captions])
        self.token_ids = base.tokenizer(self.captions, padding="max_length", truncation=True,
                                        max_length=base.tokenizer.model_max_length, return_tensors="pt").input_ids
        self.embeddings = self.encode_captions(base.text_encoder, device) if cache_text else None
        mean, std = self.encode_images(base.vae, images, False, device)
        flipped_mean = flipped_std = None
        if config.random_flip:
            flipped_mean, flipped_std = self.encode_images(base.vae, images, True, device)
        self.dataset = CachedLatents(mean, std, flipped_mean, flipped_std, caption_ids, config.seed)
        self.scaling_factor = base.vae.config.scaling_factor

    @torch.no_grad()
    def encode_captions(self, text_encoder, device) -> torch.Tensor:
        chunks = [text_encoder(ids.to(device))[0].float().cpu() for ids in self.token_ids.split(ENCODE_BATCH)]
        return torch.cat(chunks)

    @torch.no_grad()
    def encode_images(self, vae, images: ImageDataset, flip: bool, device) -> tuple[torch.Tensor, torch.Tensor]:
        means, stds = [], []
        for start in range(0, len(images), ENCODE_BATCH):
            pixels = torch.stack([images[i]["pixel_values"] for i in range(start, min(start + ENCODE_BATCH, len(images)))])
            pixels = pixels.flip(-1) if flip else pixels
            distribution = vae.encode(pixels.to(device, vae.dtype)).latent_dist
            means.append(distribution.mean.float().cpu())
            stds.append(distribution.std.float().cpu())
        return torch.cat(means), torch.cat(stds)

    def latents(self, batch: dict) -> torch.Tensor:
        """Latents sampled from each image's cached distribution, scaled as the UNet sees them."""
        mean, std = batch["latent_mean"], batch["latent_std"]
        return (mean + std * torch.randn_like(std)) * self.scaling_factor

    def dropped_caption_ids(self, batch: dict, dropout_prob: float) -> torch.Tensor:
        """Caption indices with a random share replaced by 0, the empty caption (classifier-free guidance)."""
        ids = batch["caption_ids"]
        return torch.where(torch.rand(ids.shape, device=ids.device) < dropout_prob, torch.zeros_like(ids), ids)

    def describe(self) -> dict:
        return {"images": self.images, "captioned": self.captioned, "captions": len(self.captions) - 1}


def latent_diffusion_loss(unet, noise_scheduler: DDPMScheduler, latents: torch.Tensor, conditioning: torch.Tensor,
                          snr_gamma: float | None) -> torch.Tensor:
    """Noise the latents at random timesteps and score the UNet's prediction given the captions' conditioning;
    with snr_gamma, each timestep's loss is weighted by min(SNR, gamma) / SNR (Min-SNR, Hang et al. 2023)."""
    noise = torch.randn_like(latents)
    timesteps = torch.randint(0, noise_scheduler.config.num_train_timesteps, (len(latents),), device=latents.device)
    noisy = noise_scheduler.add_noise(latents, noise, timesteps)
    prediction = unet(noisy, timesteps, conditioning).sample.float()
    target = diffusion_target(noise_scheduler, latents, noise, timesteps).float()
    if snr_gamma is None:
        return F.mse_loss(prediction, target)
    snr = compute_snr(noise_scheduler, timesteps)
    weights = torch.clamp(snr, max=snr_gamma)
    weights = weights / (snr + 1) if noise_scheduler.config.prediction_type == "v_prediction" else weights / snr
    per_sample = F.mse_loss(prediction, target, reduction="none").mean(dim=(1, 2, 3))
    return (per_sample * weights).mean()


def sample_grid(config: TrainingConfig, base: StableDiffusionPipeline, unet, text_encoder, prompts: list[str],
                scheduler=None):
    """Fixed-seed samples of the validation prompts, one row per prompt: DDIM unless another scheduler is given."""
    prompts = (config.validation_prompts or prompts)[:SAMPLE_PROMPTS]
    per_prompt = max(1, config.num_sample_images // len(prompts))
    pipeline = StableDiffusionPipeline(vae=base.vae, text_encoder=text_encoder, tokenizer=base.tokenizer, unet=unet,
                                       scheduler=scheduler or DDIMScheduler.from_config(base.scheduler.config),
                                       safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipeline.set_progress_bar_config(disable=True)
    images = []
    for row, prompt in enumerate(prompts):
        generators = [torch.Generator("cpu").manual_seed(config.seed + row * per_prompt + i) for i in range(per_prompt)]
        images += pipeline([prompt] * per_prompt, num_inference_steps=config.sample_inference_steps,
                           guidance_scale=config.validation_guidance_scale, height=config.resolution,
                           width=config.resolution, generator=generators).images
    return image_grid(images, per_prompt if len(prompts) > 1 else math.ceil(math.sqrt(per_prompt)))
