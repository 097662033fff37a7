"""Image to image: start the reverse process partway, from the input image noised to the strength's timestep
(SDEdit, Meng et al. 2022). Strength s of n steps skips the first n - round(s n) steps: the input is noised to the
timestep where the rest begin, and only those run. Strength 0 runs no step and returns the input; strength 1
starts from pure noise, the same x_T that sampling from scratch draws with the seed, so it gives exactly the
images that sampling (or, for Stable Diffusion, text to image) gives with that seed.

Unconditional models denoise pixels (SDEditRun). Stable Diffusion models go through diffusers' image-to-image
pipeline, built with `AutoPipelineForImage2Image.from_pipe` from the cached text-to-image pipeline, so its models
are shared, nothing loads twice, and LoRA, previews and Stop work as in text to image (ImageToImageRun).
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Iterator

import torch
from diffusers import AutoPipelineForImage2Image, DiffusionPipeline
from PIL import Image

from ...core.denoising import DenoiseStep, denoise, to_pil
from .forward_process import prepare
from .sampling import SamplingRequest, SamplingRun, is_number_in
from ..studio import Studio
from .text2img import TextToImageRequest, TextToImageRun


def check_strength(strength) -> float:
    if not is_number_in(strength, 0, 1):
        raise ValueError(f"Strength must be a number from 0 (the input as it is) to 1 (pure noise), got {strength!r}.")
    return float(strength)


def steps_to_skip(steps: int, strength: float) -> int:
    """How many of the first timesteps an image-to-image run skips (as diffusers' image-to-image pipelines do)."""
    return steps - min(steps, int(steps * strength))


class SDEditRun(SamplingRun):
    """Image to image for an unconditional model: the input at the model's size and channels, noised to the
    strength's timestep with the seed's noise, then denoised. `start` holds that first x_t, for showing."""

    def __init__(self, studio: Studio, request: SamplingRequest, image: Image.Image, strength: float):
        if image is None:
            raise ValueError("Upload an image to start from.")
        super().__init__(studio, request)
        self.strength = check_strength(strength)
        config = self.unet.config
        self.clean = prepare(image, (config.sample_size, config.sample_size), config.in_channels)
        self.start: torch.Tensor | None = None

    def steps(self, sample: torch.Tensor, generators: list[torch.Generator]) -> Iterator[DenoiseStep]:
        skip = steps_to_skip(self.request.steps, self.strength)
        self.scheduler.set_timesteps(self.request.steps)
        clean = self.clean.to(sample).expand_as(sample)
        if skip == self.request.steps:  # strength 0: nothing to undo
            self.start = clean
            return iter([DenoiseStep(0, 1, 0, clean, clean)])
        if skip > 0:
            sample = self.scheduler.add_noise(clean, sample, self.scheduler.timesteps[skip:skip + 1])
        self.start = sample
        return denoise(self.unet, self.scheduler, sample, self.request.steps, generators, eta=self.request.eta,
                       start_index=skip)

    def start_images(self) -> list[Image.Image]:
        return to_pil(self.start)

    def parameters(self, seed: int, image: Image.Image, label: int | None = None) -> dict:
        return {**super().parameters(seed, image, label), "Denoising strength": f"{self.strength:g}"}


class ImageToImageRun(TextToImageRun):
    """Stable Diffusion image to image: the text-to-image run with diffusers' image-to-image pipeline."""

    def __init__(self, studio: Studio, request: TextToImageRequest, image: Image.Image, strength: float,
                 preview_every: int = 0):
        if image is None:
            raise ValueError("Upload an image to start from.")
        self.strength = check_strength(strength)
        self.image = image.convert("RGB").resize((request.width, request.height), Image.Resampling.LANCZOS)
        super().__init__(studio, request, preview_every)

    def request_pipeline(self, shared: DiffusionPipeline, scheduler) -> DiffusionPipeline:
        return AutoPipelineForImage2Image.from_pipe(shared, scheduler=scheduler)

    def call_arguments(self) -> dict:
        arguments = super().call_arguments()
        del arguments["width"], arguments["height"]  # the image's own
        return {**arguments, "image": self.image, "strength": self.strength}

    def parameter_fields(self, seed: int) -> dict:
        return {"Denoising strength": f"{self.strength:g}", **super().parameter_fields(seed)}

    def _call_pipeline(self) -> None:
        if self.strength == 0:  # no step to run: the input as it is
            self._steps.put(SimpleNamespace(images=[self.image.copy() for _ in self.seeds]))
            return
        super()._call_pipeline()


def image_to_image_run(studio: Studio, request: TextToImageRequest, image: Image.Image, strength: float,
                       preview_every: int = 0) -> TextToImageRun:
    """The run for a Stable Diffusion request: strength 1 is text to image itself (the input is all noise), below
    it diffusers' image-to-image pipeline."""
    if check_strength(strength) == 1:
        return TextToImageRun(studio, request, preview_every)
    return ImageToImageRun(studio, request, image, strength, preview_every)
