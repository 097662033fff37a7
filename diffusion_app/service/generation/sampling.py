"""DDPM/DDIM sampling, unconditional or class-conditional, reporting (step, x_t, predicted x0) as it goes."""

from __future__ import annotations

import math
import secrets
import time
from dataclasses import dataclass, replace
from typing import Iterator

import torch
from PIL import Image

from ...catalog import CLASS_CONDITIONAL, UNCONDITIONAL
from ...core.denoising import DenoiseStep, denoise, initial_noise, to_pil
from ...core.grid import image_grid
from ...core.metadata import format_parameters, with_parameters
from ...core.portable_state import portable_state
from ...core.schedulers import UNCONDITIONAL_SCHEDULERS, make_scheduler
from ..studio import Studio

MAX_STEPS = 1000
MAX_SEED = 2**32 - 1
MAX_CFG_SCALE = 10.0
DEFAULT_CFG_SCALE = 3.0  # for class-conditional models in the Digits tab and the CLI


@dataclass(frozen=True)
class SamplingRequest:
    model: str
    num_images: int = 1
    steps: int = 1000
    seed: int | None = None  # None draws a random seed, reported in the result
    scheduler: str = "DDPM"
    eta: float = 0.0  # DDIM only: 0 is deterministic, 1 is as stochastic as DDPM
    classes: tuple[int, ...] | None = None  # class-conditional models: num_images of each class
    guidance_scale: float = 1.0  # class-conditional models: classifier-free guidance, 1 is off

    def validated(self, max_batch_size: int) -> "SamplingRequest":
        """Check every field; return a copy with the seed resolved."""
        require_int("Steps", self.steps, 1, MAX_STEPS)
        require_int("Number of images" if self.classes is None else "Samples per class",
                    self.num_images, 1, max_batch_size)
        if self.classes is not None and (not self.classes or len(set(self.classes)) != len(self.classes)):
            raise ValueError("Choose at least one class, each at most once.")
        if self.scheduler not in UNCONDITIONAL_SCHEDULERS:
            raise ValueError(f"Unknown scheduler {self.scheduler!r}; choose one of {', '.join(UNCONDITIONAL_SCHEDULERS)}.")
        if not is_number_in(self.eta, 0, 1):
            raise ValueError(f"Eta must be a number from 0 (deterministic) to 1, got {self.eta!r}.")
        if not is_number_in(self.guidance_scale, 0, MAX_CFG_SCALE):
            raise ValueError(f"CFG scale must be a number from 0 to {MAX_CFG_SCALE:g} (1 is no guidance), "
                             f"got {self.guidance_scale!r}.")
        if self.classes is None and self.guidance_scale != 1:
            raise ValueError("CFG scale applies to class-conditional models only; leave it at 1.")
        if self.seed is None:
            return replace(self, seed=secrets.randbelow(MAX_SEED + 1))
        require_int("Seed", self.seed, 0, MAX_SEED)
        return self

    @property
    def labels(self) -> list[int] | None:
        """One class index per image, grouped by class; None for unconditional requests."""
        if self.classes is None:
            return None
        return [label for label in self.classes for _ in range(self.num_images)]


def is_number_in(value, low: float, high: float) -> bool:
    """True for a finite int or float (not a bool) from low to high."""
    return (not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)
            and low <= value <= high)


def require_int(label: str, value, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"{label} must be a whole number from {low} to {high}, got {value!r}.")


def image_seeds(seed: int, count: int) -> list[int]:
    """Image i of a batch uses seed + i, so any image can be made again on its own."""
    return [seed + i for i in range(count)]


class SamplingRun:
    """One request. Iterate it for a DenoiseStep per step, then call images().

    The model comes from the shared cache; the scheduler is built fresh for this run.
    """

    prompt: str | None = None  # the first line of the images' parameters, for runs steered by a prompt

    def __init__(self, studio: Studio, request: SamplingRequest):
        self.request = request.validated(studio.settings.max_batch_size)
        labels = self.request.labels
        pipeline = studio.pipeline(self.request.model, UNCONDITIONAL if labels is None else CLASS_CONDITIONAL)
        self.unet = pipeline.unet
        self.class_names = getattr(pipeline, "class_names", None)
        if labels is not None:
            require_classes(self.request.classes, self.class_names)
        self.class_labels = None if labels is None else torch.tensor(labels, device=self.unet.device)
        self.null_label = getattr(pipeline, "null_class_label", None)
        if self.request.guidance_scale != 1 and self.null_label is None:
            raise ValueError(f"{self.request.model} was trained without class dropout, so it has no 'no class' "
                             "prediction for classifier-free guidance: set CFG scale to 1.")
        self.scheduler = make_scheduler(self.request.scheduler, pipeline.scheduler.config)
        self.seeds = image_seeds(self.request.seed, len(labels or range(self.request.num_images)))
        self.final_sample: torch.Tensor | None = None
        self.seconds = 0.0

    def __getstate__(self) -> dict:
        """The run as it comes back from a Ray replica: its results and timing, not its model."""
        return portable_state(self, kept_here=("unet", "scheduler", "class_labels"))

    def __iter__(self) -> Iterator[DenoiseStep]:
        start = time.perf_counter()
        generators = [torch.Generator("cpu").manual_seed(s) for s in self.seeds]
        sample = initial_noise(self.unet, generators)
        for step in self.steps(sample, generators):
            self.seconds = time.perf_counter() - start
            yield step
        self.final_sample = step.sample

    def steps(self, sample: torch.Tensor, generators: list[torch.Generator]) -> Iterator[DenoiseStep]:
        """The denoising loop from x_T; guided runs steer it."""
        return denoise(self.unet, self.scheduler, sample, self.request.steps, generators,
                       class_labels=self.class_labels, eta=self.request.eta,
                       guidance_scale=self.request.guidance_scale, null_label=self.null_label)

    def images(self) -> list[Image.Image]:
        if self.final_sample is None:
            raise RuntimeError("The run has not finished.")
        images = to_pil(self.final_sample)
        labels = self.request.labels or [None] * len(images)
        for image, seed, label in zip(images, self.seeds, labels):
            with_parameters(image, format_parameters(self.parameters(seed, image, label), self.prompt))
        return images

    def grid(self, images: list[Image.Image]) -> Image.Image:
        """The run's images in one picture, one row per class for class-conditional runs, with its parameters."""
        columns = self.request.num_images if self.request.classes else math.ceil(math.sqrt(len(images)))
        grid = image_grid(images, columns)
        settings = self.parameters(self.request.seed, images[0])
        if self.request.classes:
            settings["Class"] = " ".join(self.class_names[label] for label in self.request.classes)
        return with_parameters(grid, format_parameters({"Grid": f"{len(images)} images", **settings}, self.prompt))

    def parameters(self, seed: int, image: Image.Image, label: int | None = None) -> dict:
        request = self.request
        return {
            "Class": None if label is None else self.class_names[label],
            "Steps": request.steps,
            "Sampler": request.scheduler,
            "Eta": request.eta if request.scheduler == "DDIM" else None,
            "CFG scale": f"{request.guidance_scale:g}" if request.classes else None,
            "Seed": seed,
            "Size": f"{image.width}x{image.height}",
            "Model": request.model,
        }


def require_classes(classes: tuple[int, ...], class_names: list[str]) -> None:
    for label in classes:
        if isinstance(label, bool) or not isinstance(label, int) or not 0 <= label < len(class_names):
            raise ValueError(f"Class {label!r} is not one of this model's classes: "
                             f"0..{len(class_names) - 1} ({', '.join(class_names)}).")


def sample(studio: Studio, request: SamplingRequest) -> tuple[list[Image.Image], SamplingRun]:
    """Run a request to the end; returns the images and the finished run (seeds, timing)."""
    run = SamplingRun(studio, request)
    for _ in run:
        pass
    return run.images(), run
