"""Unconditional DDPM/DDIM sampling that reports (step, x_t, predicted x0) as it goes."""

from __future__ import annotations

import math
import secrets
import time
from dataclasses import dataclass, replace
from typing import Iterator

import torch
from diffusers import DDIMScheduler, DiffusionPipeline
from diffusers.utils.torch_utils import randn_tensor
from PIL import Image

from ..catalog import UNCONDITIONAL
from .metadata import format_parameters, with_parameters
from .schedulers import UNCONDITIONAL_SCHEDULERS, make_scheduler
from .studio import Studio

MAX_STEPS = 1000
MAX_SEED = 2**32 - 1


@dataclass(frozen=True)
class SamplingRequest:
    model: str
    num_images: int = 1
    steps: int = 1000
    seed: int | None = None  # None draws a random seed, reported in the result
    scheduler: str = "DDPM"
    eta: float = 0.0  # DDIM only: 0 is deterministic, 1 is as stochastic as DDPM

    def validated(self, max_batch_size: int) -> "SamplingRequest":
        """Check every field; return a copy with the seed resolved."""
        require_int("Steps", self.steps, 1, MAX_STEPS)
        require_int("Number of images", self.num_images, 1, max_batch_size)
        if self.scheduler not in UNCONDITIONAL_SCHEDULERS:
            raise ValueError(f"Unknown scheduler {self.scheduler!r}; choose one of {', '.join(UNCONDITIONAL_SCHEDULERS)}.")
        if not isinstance(self.eta, (int, float)) or not math.isfinite(self.eta) or not 0 <= self.eta <= 1:
            raise ValueError(f"Eta must be a number from 0 (deterministic) to 1, got {self.eta!r}.")
        if self.seed is None:
            return replace(self, seed=secrets.randbelow(MAX_SEED + 1))
        require_int("Seed", self.seed, 0, MAX_SEED)
        return self


def require_int(label: str, value, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"{label} must be a whole number from {low} to {high}, got {value!r}.")


@dataclass
class DenoiseStep:
    index: int  # 0-based position in the loop
    total: int
    timestep: int
    sample: torch.Tensor  # x_t after this step
    pred_original: torch.Tensor  # the scheduler's predicted clean image x0


def to_pil(batch: torch.Tensor) -> list[Image.Image]:
    """[-1, 1] NCHW tensors -> PIL images, exactly as diffusers' DDPMPipeline converts them."""
    array = (batch / 2 + 0.5).clamp(0, 1).cpu().permute(0, 2, 3, 1).float().numpy()
    return DiffusionPipeline.numpy_to_pil(array)


def image_seeds(seed: int, count: int) -> list[int]:
    """Image i of a batch uses seed + i, so any image can be made again on its own."""
    return [seed + i for i in range(count)]


class SamplingRun:
    """One request. Iterate it for a DenoiseStep per step, then call images().

    The model comes from the shared cache; the scheduler is built fresh for this run.
    """

    def __init__(self, studio: Studio, request: SamplingRequest):
        self.request = request.validated(studio.settings.max_batch_size)
        pipeline = studio.pipeline(self.request.model, UNCONDITIONAL)
        self.unet = pipeline.unet
        self.scheduler = make_scheduler(self.request.scheduler, pipeline.scheduler.config)
        self.seeds = image_seeds(self.request.seed, self.request.num_images)
        self.final_sample: torch.Tensor | None = None
        self.seconds = 0.0

    def __iter__(self) -> Iterator[DenoiseStep]:
        start = time.perf_counter()
        generators = [torch.Generator("cpu").manual_seed(s) for s in self.seeds]
        size = self.unet.config.sample_size
        height, width = (size, size) if isinstance(size, int) else size
        shape = (len(self.seeds), self.unet.config.in_channels, height, width)
        sample = randn_tensor(shape, generator=generators, device=self.unet.device, dtype=self.unet.dtype)
        step_options = {"eta": self.request.eta} if isinstance(self.scheduler, DDIMScheduler) else {}

        self.scheduler.set_timesteps(self.request.steps)
        timesteps = self.scheduler.timesteps
        for index, t in enumerate(timesteps):
            with torch.no_grad():
                noise_pred = self.unet(sample, t).sample
                output = self.scheduler.step(noise_pred, t, sample, generator=generators, **step_options)
            sample = output.prev_sample
            self.seconds = time.perf_counter() - start
            yield DenoiseStep(index, len(timesteps), int(t), sample, output.pred_original_sample)
        self.final_sample = sample

    def images(self) -> list[Image.Image]:
        if self.final_sample is None:
            raise RuntimeError("The run has not finished.")
        images = to_pil(self.final_sample)
        for image, seed in zip(images, self.seeds):
            with_parameters(image, format_parameters(self.parameters(seed, image)))
        return images

    def parameters(self, seed: int, image: Image.Image) -> dict:
        request = self.request
        return {
            "Steps": request.steps,
            "Sampler": request.scheduler,
            "Eta": request.eta if request.scheduler == "DDIM" else None,
            "Seed": seed,
            "Size": f"{image.width}x{image.height}",
            "Model": request.model,
        }


def sample(studio: Studio, request: SamplingRequest) -> tuple[list[Image.Image], SamplingRun]:
    """Run a request to the end; returns the images and the finished run (seeds, timing)."""
    run = SamplingRun(studio, request)
    for _ in run:
        pass
    return run.images(), run
