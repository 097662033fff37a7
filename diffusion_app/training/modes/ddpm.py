"""Mode "ddpm": a UNet2DModel that denoises in pixel space, unconditional or class-conditional, as the
diffusers example train_unconditional.py trains it. Saved as a DDPMPipeline (or ClassConditionalPipeline)."""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F
from accelerate import Accelerator
from diffusers import DDIMScheduler, DDPMPipeline, DDPMScheduler, UNet2DModel

from ...core.class_conditional import ClassConditionalPipeline
from ...core.denoising import denoise, initial_noise, to_pil
from ...core.grid import image_grid
from ..config import TrainingConfig
from ..data import ImageDataset
from ..sources import read_items


def build_unet(config: TrainingConfig, num_classes: int | None) -> UNet2DModel:
    """A UNet2DModel; class-conditional ones trained with class dropout get one more embedding, for "no class"."""
    num_class_embeds = num_classes + (config.class_dropout_prob > 0) if num_classes else None
    levels = len(config.block_out_channels)
    attention_last = config.attention and levels > 1
    down = ["DownBlock2D"] * (levels - 1) + ["AttnDownBlock2D" if attention_last else "DownBlock2D"]
    up = ["AttnUpBlock2D" if attention_last else "UpBlock2D"] + ["UpBlock2D"] * (levels - 1)
    return UNet2DModel(
        sample_size=config.resolution,
        in_channels=config.channels,
        out_channels=config.channels,
        block_out_channels=tuple(config.block_out_channels),
        layers_per_block=config.layers_per_block,
        down_block_types=tuple(down),
        up_block_types=tuple(up),
        norm_num_groups=min(32, config.block_out_channels[0]),
        num_class_embeds=num_class_embeds,
    )


def load_model(config: TrainingConfig, num_classes: int | None) -> tuple[UNet2DModel, DDPMScheduler]:
    """A fresh UNet and noise schedule, or those of the pipeline being fine-tuned."""
    if config.pretrained_model is None:
        scheduler = DDPMScheduler(num_train_timesteps=config.num_train_timesteps, beta_schedule=config.beta_schedule,
                                  prediction_type=config.prediction_type)
        return build_unet(config, num_classes), scheduler
    if num_classes:
        raise ValueError("Fine-tuning starts from an unconditional pipeline: set class_conditional to false "
                         "or train a class-conditional model from scratch.")
    pipeline = DDPMPipeline.from_pretrained(config.pretrained_model)
    scheduler = DDPMScheduler.from_config(pipeline.scheduler.config, prediction_type=config.prediction_type)
    return pipeline.unet, scheduler


def drop_labels(labels: torch.Tensor, num_classes: int, dropout_prob: float) -> torch.Tensor:
    """Replace a random share of the labels by the "no class" label, index num_classes (as in DiT)."""
    dropped = torch.rand(labels.shape, device=labels.device) < dropout_prob
    return torch.where(dropped, torch.full_like(labels, num_classes), labels)


def diffusion_target(noise_scheduler: DDPMScheduler, clean: torch.Tensor, noise: torch.Tensor,
                     timesteps: torch.Tensor) -> torch.Tensor:
    """What the model learns to predict: the noise (epsilon), the velocity v, or the clean sample."""
    prediction_type = noise_scheduler.config.prediction_type
    if prediction_type == "epsilon":
        return noise
    if prediction_type == "v_prediction":
        return noise_scheduler.get_velocity(clean, noise, timesteps)
    return clean


def diffusion_loss(unet, noise_scheduler: DDPMScheduler, clean: torch.Tensor,
                   labels: torch.Tensor | None) -> torch.Tensor:
    """Noise a batch at random timesteps and score the UNet's prediction (epsilon, v or x0)."""
    noise = torch.randn_like(clean)
    timesteps = torch.randint(0, noise_scheduler.config.num_train_timesteps, (clean.shape[0],), device=clean.device)
    noisy = noise_scheduler.add_noise(clean, noise, timesteps)
    prediction = unet(noisy, timesteps, class_labels=labels).sample
    return F.mse_loss(prediction.float(), diffusion_target(noise_scheduler, clean, noise, timesteps).float())


class DDPMMode:
    def __init__(self, config: TrainingConfig, accelerator: Accelerator):
        self.config = config
        self.dataset = ImageDataset(read_items(config), config.resolution, config.channels,
                                    center_crop=config.center_crop, random_flip=config.random_flip,
                                    class_conditional=config.class_conditional, seed=config.seed)
        self.class_names = self.dataset.class_names
        self.model, self.noise_scheduler = load_model(config, len(self.class_names) if self.class_names else None)

    def trainable_parameters(self) -> list[torch.nn.Parameter]:
        return list(self.model.parameters())

    def describe(self) -> dict:
        return {"images": len(self.dataset), "classes": self.class_names}

    def loss(self, model, batch: dict) -> torch.Tensor:
        labels = batch.get("class_labels")
        if labels is not None and self.config.class_dropout_prob:
            labels = drop_labels(labels, len(self.class_names), self.config.class_dropout_prob)
        return diffusion_loss(model, self.noise_scheduler, batch["pixel_values"], labels)

    def sample_grid(self, unet):
        """A fixed-seed grid of DDIM samples; class-conditional grids get one row per class."""
        config, class_names = self.config, self.class_names
        count = config.num_sample_images
        labels = None
        if class_names:
            per_class = max(1, count // len(class_names))
            labels = torch.arange(len(class_names), device=unet.device).repeat_interleave(per_class)
            count = len(labels)
        generators = [torch.Generator("cpu").manual_seed(config.seed + i) for i in range(count)]
        scheduler = DDIMScheduler.from_config(self.noise_scheduler.config)
        sample = initial_noise(unet, generators)
        for step in denoise(unet, scheduler, sample, config.sample_inference_steps, generators, class_labels=labels):
            sample = step.sample
        columns = count // len(class_names) if class_names else math.ceil(math.sqrt(count))
        return image_grid(to_pil(sample), columns)

    def save(self, unet: UNet2DModel, output_dir: Path) -> Path:
        if self.config.save_precision == "fp16":
            unet = unet.to(torch.float16)
        pipeline = (ClassConditionalPipeline(unet=unet, scheduler=self.noise_scheduler, class_names=self.class_names)
                    if self.class_names else DDPMPipeline(unet=unet, scheduler=self.noise_scheduler))
        folder = output_dir / "pipeline"
        pipeline.save_pretrained(folder, safe_serialization=True)
        return folder
