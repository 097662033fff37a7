"""Guidance at sampling time: steer an unconditional model with a loss on the predicted clean image.

At each guided step the UNet predicts the noise, the scheduler gives the predicted clean image x0,
and x moves against the gradient of scale * loss(x0) before the scheduler steps, as in the Hugging
Face diffusion course (unit 2). Two methods:

- fast: the UNet runs without gradients; the gradient flows through the x0 formula only (a noise-predicting
  model's, for every model: see guide()).
- exact: the gradient flows through the UNet too: slower and heavier, closer to the true gradient.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Iterator

import numpy as np
import torch
from diffusers import DDIMScheduler
from PIL import Image, ImageColor

from ...core.denoising import DenoiseStep, run_unet
from .sampling import SamplingRequest, SamplingRun, is_number_in, require_int
from ..studio import Studio

FAST = "fast"
EXACT = "exact"
GUIDANCE_METHODS = (FAST, EXACT)
MAX_GUIDANCE_SCALE = 1000.0
# The objective's random numbers (CLIP cutouts) come from image seed + this, a stream apart from the noise.
OBJECTIVE_SEED_OFFSET = 2**32


@dataclass(frozen=True)
class Guidance:
    scale: float  # 0 turns guidance off (the loss is still recorded)
    method: str = FAST
    every: int = 1  # guide steps 0, k, 2k, ...
    start: float = 0.0  # ... from this fraction of the steps
    end: float = 1.0  # ... up to (not including) this one

    def validated(self) -> "Guidance":
        if not is_number_in(self.scale, 0, MAX_GUIDANCE_SCALE):
            raise ValueError(f"Guidance scale must be a number from 0 (off) to {MAX_GUIDANCE_SCALE:g}, "
                             f"got {self.scale!r}.")
        if self.method not in GUIDANCE_METHODS:
            raise ValueError(f"Unknown guidance method {self.method!r}; choose {' or '.join(GUIDANCE_METHODS)}.")
        require_int("Guide every k steps", self.every, 1, 1000)
        for label, value in (("Guidance start", self.start), ("Guidance end", self.end)):
            if not is_number_in(value, 0, 1):
                raise ValueError(f"{label} must be a fraction of the steps from 0 to 1, got {value!r}.")
        if self.start >= self.end:
            raise ValueError(f"Guidance start ({self.start:g}) must come before its end ({self.end:g}).")
        return replace(self, scale=float(self.scale))

    def applies_at(self, index: int, total: int) -> bool:
        return self.start * total <= index < self.end * total and index % self.every == 0

    def parameters(self) -> dict:
        return {
            "Guidance scale": f"{self.scale:g}",
            "Guidance method": self.method,
            "Guidance every": self.every if self.every != 1 else None,
            "Guidance range": f"{self.start:g}-{self.end:g}" if (self.start, self.end) != (0, 1) else None,
        }


class Objective:
    """What guidance lowers: one loss per image, so the images of a batch never steer each other."""

    prompt: str | None = None

    def loss(self, x0: torch.Tensor, generators: list[torch.Generator]) -> torch.Tensor:
        """Losses of shape (batch,) for predicted clean images x0 in [-1, 1]; generators: one per image."""
        raise NotImplementedError

    def gradient_weight(self, alpha_bar: float) -> float:
        """Factor on the gradient at a timestep whose cumulative alpha is alpha_bar."""
        return 1.0

    def parameters(self) -> dict:
        raise NotImplementedError

    def bound(self, studio: Studio) -> "Objective":
        """The objective with its models loaded from the studio the run executes in; most need none."""
        return self


class ColourObjective(Objective):
    """Mean absolute difference between x0 and a colour (its luminance for grayscale models)."""

    def __init__(self, colour: str):
        try:
            self.rgb = ImageColor.getrgb(str(colour).strip())[:3]
        except ValueError:
            raise ValueError(f"Colour must be like #ff8000 or rgb(255, 128, 0), got {colour!r}.") from None
        self.hex = "#{:02x}{:02x}{:02x}".format(*self.rgb)

    def target(self, channels: int) -> tuple[float, ...]:
        """The colour in [0, 1] for images of this many channels."""
        if channels == 3:
            return tuple(value / 255 for value in self.rgb)
        if channels == 1:
            return (Image.new("RGB", (1, 1), self.rgb).convert("L").getpixel((0, 0)) / 255,)
        raise ValueError(f"Colour guidance needs a model with 1 or 3 channels, not {channels}.")

    def loss(self, x0: torch.Tensor, generators: list[torch.Generator]) -> torch.Tensor:
        target = torch.tensor(self.target(x0.shape[1]), device=x0.device).view(1, -1, 1, 1) * 2 - 1
        return (x0.float() - target).abs().mean(dim=(1, 2, 3))

    def distance(self, images: list[Image.Image]) -> float:
        """Mean absolute difference, in [0, 1], between the pixels of finished images and the colour."""
        pixels = np.stack([np.asarray(image, dtype=np.float64) / 255 for image in images])
        target = np.asarray(self.target(1 if pixels.ndim == 3 else pixels.shape[-1]))
        return float(np.abs(pixels - target).mean())

    def parameters(self) -> dict:
        return {"Guidance": "colour", "Colour": self.hex}


@dataclass
class GuidedStep(DenoiseStep):
    loss: float | None = None  # mean loss of x0 over the batch, on guided steps


def guided_denoise(unet, scheduler, sample: torch.Tensor, steps: int, generators: list[torch.Generator],
                   objective: Objective, guidance: Guidance, objective_generators: list[torch.Generator],
                   eta: float = 0.0) -> Iterator[GuidedStep]:
    """The reverse process with guidance on the chosen steps, one GuidedStep per scheduler step.

    generators draw the images' noise; objective_generators, one per image too, the objective's random numbers.
    """
    step_options = {"eta": eta} if isinstance(scheduler, DDIMScheduler) else {}
    scratch = torch.Generator("cpu")
    scheduler.set_timesteps(steps)
    timesteps = scheduler.timesteps
    for index, t in enumerate(timesteps):
        loss = None
        if guidance.applies_at(index, len(timesteps)):
            noise_pred, sample, loss = guide(unet, scheduler, sample, t, objective, guidance, objective_generators,
                                             scratch, step_options)
        else:
            with torch.no_grad():
                noise_pred = run_unet(unet, sample, t)
        with torch.no_grad():
            output = scheduler.step(noise_pred, t, sample, generator=generators, **step_options)
        sample = output.prev_sample
        yield GuidedStep(index, len(timesteps), int(t), sample, output.pred_original_sample, loss)


def guide(unet, scheduler, sample: torch.Tensor, t: torch.Tensor, objective: Objective, guidance: Guidance,
          objective_generators: list[torch.Generator], scratch: torch.Generator,
          step_options: dict) -> tuple[torch.Tensor, torch.Tensor, float]:
    """One guided step: the noise prediction, x moved against the gradient of the loss, and the loss before.

    The fast method carries the loss's gradient with respect to x0 back to x_t as a noise-predicting model's x0
    formula does, x0 = (x_t - sqrt(1 - alpha_bar) eps) / sqrt(alpha_bar) with eps held fixed, whatever the model
    predicts: through a v-prediction model's formula the same gradient would be 1/alpha_bar times weaker at the
    noisy steps, and a guidance scale would mean something else for each kind of model.
    """
    steering = guidance.scale > 0
    exact = steering and guidance.method == EXACT
    sample = sample.detach().requires_grad_(exact)
    with torch.set_grad_enabled(exact):
        noise_pred = run_unet(unet, sample, t)
        # Only x0 is used: noise this call may draw comes from a scratch generator, so the images'
        # generators advance exactly as they do without guidance.
        x0 = scheduler.step(noise_pred, t, sample, generator=scratch, **step_options).pred_original_sample
    if steering and not exact:
        x0 = x0.detach().requires_grad_()
    with torch.set_grad_enabled(steering):
        losses = objective.loss(x0, objective_generators)
    if steering:
        alpha_bar = float(scheduler.alphas_cumprod[int(t)])
        if exact:
            (gradient,) = torch.autograd.grad(losses.sum() * guidance.scale, sample)
        else:
            (gradient,) = torch.autograd.grad(losses.sum() * guidance.scale, x0)
            gradient = gradient / math.sqrt(alpha_bar)
        sample = sample.detach() - objective.gradient_weight(alpha_bar) * gradient
    return noise_pred.detach(), sample.detach(), losses.mean().item()


class GuidedRun(SamplingRun):
    """A SamplingRun whose loop steers every image toward an objective; `losses` holds (step, loss) per guided step.

    The images' noise comes from the same generators as an unguided run, so scale 0 gives its images exactly.
    """

    def __init__(self, studio: Studio, request: SamplingRequest, guidance: Guidance, objective: Objective):
        if request.classes is not None:
            raise ValueError("Guidance steers unconditional models; leave the classes out.")
        guidance = guidance.validated()
        super().__init__(studio, request)
        total = self.request.steps
        if not any(guidance.applies_at(index, total) for index in range(total)):
            raise ValueError(f"Guiding every {guidance.every} steps from {guidance.start:g} to {guidance.end:g} of "
                             f"{total} steps guides none of them; widen the range or guide more often.")
        self.guidance = guidance
        self.objective = objective.bound(studio)
        self.prompt = self.objective.prompt
        self.losses: list[tuple[int, float]] = []

    def steps(self, sample: torch.Tensor, generators: list[torch.Generator]) -> Iterator[GuidedStep]:
        objective_generators = [torch.Generator("cpu").manual_seed(OBJECTIVE_SEED_OFFSET + seed) for seed in self.seeds]
        steps = guided_denoise(self.unet, self.scheduler, sample, self.request.steps, generators, self.objective,
                               self.guidance, objective_generators, eta=self.request.eta)
        for step in steps:
            if step.loss is not None:
                self.losses.append((step.index + 1, step.loss))
            yield step

    def parameters(self, seed: int, image: Image.Image, label: int | None = None) -> dict:
        return {**super().parameters(seed, image, label), **self.guidance.parameters(), **self.objective.parameters()}
