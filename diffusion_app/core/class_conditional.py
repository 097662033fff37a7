"""Class-conditional generation: a UNet2DModel with a class embedding, saved as its own pipeline.

The class-conditioned UNet is diffusers' UNet2DModel with `num_class_embeds` set: the label's
embedding is added to the timestep embedding in every residual block. Being a ModelMixin it
saves and loads with save_pretrained / from_pretrained; the pipeline adds the class names.
A UNet with one embedding more than there are classes was trained with class dropout: that last
label means "no class", which classifier-free guidance needs.
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
        embeds = unet.config.num_class_embeds
        if not embeds:
            raise ValueError("A class-conditional pipeline needs a UNet2DModel built with num_class_embeds.")
        names = list(class_names) if class_names else [str(i) for i in range(embeds)]
        if embeds not in (len(names), len(names) + 1):
            raise ValueError(f"The UNet has {embeds} class embeddings for {len(names)} class names; "
                             "it needs one per class, plus at most one for 'no class'.")
        self.register_modules(unet=unet, scheduler=scheduler)
        self.register_to_config(class_names=names)

    @property
    def class_names(self) -> list[str]:
        return list(self.config.class_names)

    @property
    def null_class_label(self) -> int | None:
        """The "no class" label used by classifier-free guidance; None when the model was trained without one."""
        names = len(self.config.class_names)
        return names if self.unet.config.num_class_embeds == names + 1 else None

    def __call__(self, class_labels: list[int], num_inference_steps: int = 50,
                 generator: list[torch.Generator] | None = None, guidance_scale: float = 1.0) -> list[Image.Image]:
        """One image per label; `generator` holds one torch.Generator per image. A guidance_scale other
        than 1 applies classifier-free guidance (models trained with class dropout only)."""
        generators = generator or [torch.Generator("cpu").manual_seed(i) for i in range(len(class_labels))]
        labels = torch.tensor(class_labels, device=self.device)
        sample = initial_noise(self.unet, generators)
        for step in denoise(self.unet, self.scheduler, sample, num_inference_steps, generators, class_labels=labels,
                            guidance_scale=guidance_scale, null_label=self.null_class_label):
            sample = step.sample
        return to_pil(sample)
