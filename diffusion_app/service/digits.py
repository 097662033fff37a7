"""Class-conditional generation: a UNet2DModel with a class embedding, saved as its own pipeline.

The class-conditioned UNet is diffusers' UNet2DModel with `num_class_embeds` set: the label's
embedding is added to the timestep embedding in every residual block. Being a ModelMixin it
saves and loads with save_pretrained / from_pretrained; the pipeline adds the class names.
"""

from __future__ import annotations

import torch
from diffusers import DiffusionPipeline, SchedulerMixin, UNet2DModel
from PIL import Image

from .denoising import denoise, initial_noise, to_pil


class ClassConditionalPipeline(DiffusionPipeline):
    """unet + scheduler + class names; `model_index.json` records the names for the UI."""

    model_cpu_offload_seq = "unet"

    def __init__(self, unet: UNet2DModel, scheduler: SchedulerMixin, class_names: list[str] | None = None):
        super().__init__()
        if not unet.config.num_class_embeds:
            raise ValueError("A class-conditional pipeline needs a UNet2DModel built with num_class_embeds.")
        self.register_modules(unet=unet, scheduler=scheduler)
        names = list(class_names) if class_names else [str(i) for i in range(unet.config.num_class_embeds)]
        self.register_to_config(class_names=names)

    @property
    def class_names(self) -> list[str]:
        return list(self.config.class_names)

    def __call__(self, class_labels: list[int], num_inference_steps: int = 50,
                 generator: list[torch.Generator] | None = None) -> list[Image.Image]:
        """One image per label; `generator` holds one torch.Generator per image."""
        generators = generator or [torch.Generator("cpu").manual_seed(i) for i in range(len(class_labels))]
        labels = torch.tensor(class_labels, device=self.device)
        sample = initial_noise(self.unet, generators)
        for step in denoise(self.unet, self.scheduler, sample, num_inference_steps, generators, class_labels=labels):
            sample = step.sample
        return to_pil(sample)
