"""Inpainting: redraw the white part of a mask and keep the rest, with any model the app has.

Pixel models (openmoji, digits' kind of unconditional DDPM) run one of two loops. RePaint (Lugmayr et al. 2022)
with diffusers' RePaintScheduler: each step joins the known part, noised to the step's level, with the model's
step for the unknown part, and every `jump_length` steps it goes back up the chain `resampling` times (noise
added again, then denoised again), so the two parts have steps to agree at their seam. The plain baseline
replaces the known part every step and never goes back: the model draws the unknown part without seeing how it
must join, which is what RePaint fixes. In both the last step leaves the known pixels exactly as they were.

Stable Diffusion models go through diffusers' inpainting pipeline, built with `AutoPipelineForInpainting.from_pipe`
from the cached text-to-image pipeline (an ordinary 4-channel UNet: the pipeline blends in the noised input's
latents outside the mask each step; a 9-channel inpainting UNet: it reads the masked image itself). The VAE's
round trip changes every pixel a little, so the input is laid back over the result outside the (blurred) mask, as
other inpainting tools do. "Only masked" (AUTOMATIC1111's name; diffusers' `padding_mask_crop`) redraws just the
mask's box, with a margin of context, scaled up to the model's size and pasted back: a small mask gets all the
model's pixels, and the prompt counts for more against what surrounds it.

A mask with nothing left to keep is sampling from scratch: inpainting_run hands it to the plain runs, so an
all-white mask gives the images Unconditional and Text to image give for the seed.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np
import torch
from diffusers import AutoPipelineForInpainting, DDIMScheduler, DiffusionPipeline, RePaintScheduler
from PIL import Image

from ...core.denoising import DenoiseStep, run_unet
from .forward_process import prepare
from .image_to_image import check_strength
from .inpaint_canvas import blurred, is_all_redrawn, overlay
from .sampling import SamplingRequest, SamplingRun, require_int
from ..studio import Studio
from .text2img import TextToImageRequest, TextToImageRun

REPAINT = "RePaint"
REPLACE = "Replace the known part"
INPAINT_METHODS = (REPAINT, REPLACE)
MAX_MASK_PADDING = 256
REPAINT_ETA = 1.0  # RePaint as published: DDPM's stochastic steps
KNOWN_PART_SEED_OFFSET = 2**33  # the noise the known part gets in the baseline: a stream apart from the image's


def mask_fields(mask: Image.Image) -> dict:
    """What the images' parameters say of the mask: its share of the canvas and the box it covers."""
    pixels = np.asarray(mask) >= 128
    rows, columns = np.nonzero(pixels)
    return {"Mask": f"{pixels.mean():.0%} in x {columns.min()}-{columns.max() + 1} y {rows.min()}-{rows.max() + 1}"}


def as_noise(prediction: torch.Tensor, sample: torch.Tensor, alpha_bar: float, prediction_type: str) -> torch.Tensor:
    """The noise a model's prediction implies: RePaintScheduler reads epsilon only, and a v-prediction model (the
    bundled openmoji) predicts v = sqrt(alpha_bar) eps - sqrt(1 - alpha_bar) x0, so eps = sqrt(alpha_bar) v +
    sqrt(1 - alpha_bar) x_t."""
    if prediction_type == "epsilon":
        return prediction
    if prediction_type == "v_prediction":
        return alpha_bar ** 0.5 * prediction + (1 - alpha_bar) ** 0.5 * sample
    raise ValueError(f"RePaint needs a model that predicts the noise or v, not {prediction_type!r}: use the "
                     "replace-the-known-part method.")


class PixelInpaintRun(SamplingRun):
    """Inpainting with an unconditional pixel model, at the model's size: the image and mask are resized to it."""

    def __init__(self, studio: Studio, request: SamplingRequest, image: Image.Image, mask: Image.Image,
                 method: str = REPAINT, jump_length: int = 10, resampling: int = 10):
        if method not in INPAINT_METHODS:
            raise ValueError(f"Unknown inpainting method {method!r}; choose {' or '.join(INPAINT_METHODS)}.")
        super().__init__(studio, request)
        require_int("Jump length", jump_length, 1, 100)
        require_int("Resampling", resampling, 1, 20)
        self.method, self.jump_length, self.resampling = method, int(jump_length), int(resampling)
        config = self.unet.config
        size = (config.sample_size, config.sample_size)
        self.clean = prepare(image, size, config.in_channels)
        self.mask = mask.resize(size, Image.Resampling.NEAREST)
        self.redraw = torch.from_numpy(np.asarray(self.mask) >= 128).float()[None, None]  # 1 where it redraws
        if not self.redraw.any():
            raise ValueError("At the model's size the mask covers no pixel: paint a larger part.")

    def steps(self, sample: torch.Tensor, generators: list[torch.Generator]) -> Iterator[DenoiseStep]:
        original = self.clean.to(sample).expand_as(sample)
        if self.method == REPAINT:
            return self.repaint(sample, original, generators)
        return self.replace_known_part(sample, original, generators)

    def repaint(self, sample: torch.Tensor, original: torch.Tensor,
                generators: list[torch.Generator]) -> Iterator[DenoiseStep]:
        """diffusers' RePaint loop, each image stepping with its own generator (so it is the same alone)."""
        scheduler = RePaintScheduler.from_config(self.scheduler.config, eta=REPAINT_ETA)
        scheduler.set_timesteps(self.request.steps, self.jump_length, self.resampling)
        known = 1 - self.redraw  # RePaint's mask: 1 where the image is known
        timesteps = scheduler.timesteps
        previous = timesteps[0] + 1
        predicted = sample
        for index, t in enumerate(timesteps):
            if t < previous:  # down the chain: a denoising step
                with torch.no_grad():
                    noise = as_noise(run_unet(self.unet, sample, t), sample, scheduler.alphas_cumprod[t].item(),
                                     self.scheduler.config.prediction_type)
                outputs = [scheduler.step(noise[i:i + 1], t, sample[i:i + 1], original[i:i + 1], known, generator)
                           for i, generator in enumerate(generators)]
                sample = torch.cat([output.prev_sample for output in outputs])
                predicted = torch.cat([output.pred_original_sample for output in outputs])
            else:  # back up: the noise of the steps jumped over, added again
                sample = torch.cat([scheduler.undo_step(sample[i:i + 1], previous, generator)
                                    for i, generator in enumerate(generators)])
            previous = t
            yield DenoiseStep(index, len(timesteps), int(t), sample, predicted)

    def replace_known_part(self, sample: torch.Tensor, original: torch.Tensor,
                           generators: list[torch.Generator]) -> Iterator[DenoiseStep]:
        """The baseline: the chosen sampler's loop, with the known part put back, noised to the level of the next
        step, after every step."""
        scheduler = self.scheduler
        scheduler.set_timesteps(self.request.steps)
        timesteps = scheduler.timesteps
        step_options = {"eta": self.request.eta} if isinstance(scheduler, DDIMScheduler) else {}
        known_noise = [torch.Generator("cpu").manual_seed(KNOWN_PART_SEED_OFFSET + seed) for seed in self.seeds]
        for index, t in enumerate(timesteps):
            with torch.no_grad():
                noise = run_unet(self.unet, sample, t)
                output = scheduler.step(noise, t, sample, generator=generators, **step_options)
            if index + 1 < len(timesteps):
                fresh = torch.cat([torch.randn(original[:1].shape, generator=generator) for generator in known_noise])
                known = scheduler.add_noise(original, fresh.to(original), timesteps[index + 1:index + 2])
            else:
                known = original
            sample = self.redraw * output.prev_sample + (1 - self.redraw) * known
            yield DenoiseStep(index, len(timesteps), int(t), sample, output.pred_original_sample)

    def parameters(self, seed: int, image: Image.Image, label: int | None = None) -> dict:
        fields = {"Inpainting": self.method}
        if self.method == REPAINT:
            fields.update({"Jump length": self.jump_length, "Resampling": self.resampling})
        return {**super().parameters(seed, image, label), **fields, **mask_fields(self.mask)}


class InpaintRun(TextToImageRun):
    """Stable Diffusion inpainting: the text-to-image run with diffusers' inpainting pipeline."""

    def __init__(self, studio: Studio, request: TextToImageRequest, image: Image.Image, mask: Image.Image,
                 strength: float = 1.0, mask_blur: float = 4, mask_padding: int | None = None,
                 preview_every: int = 0):
        """mask_padding: None redraws in the whole picture; pixels of margin around the mask's box for "only
        masked"."""
        self.strength = check_strength(strength)
        if self.strength == 0:
            raise ValueError("Strength 0 redraws nothing: choose a strength above 0 (1 redraws the masked part "
                             "from noise).")
        size = (request.width, request.height)
        self.image = image.convert("RGB").resize(size, Image.Resampling.LANCZOS)
        self.mask = mask.resize(size, Image.Resampling.NEAREST)
        self.mask_blur = mask_blur
        if mask_padding is not None:
            require_int("Only masked padding", mask_padding, 0, MAX_MASK_PADDING)
        self.mask_padding = mask_padding
        self.soft_mask = blurred(self.mask, mask_blur)
        super().__init__(studio, request, preview_every)

    def request_pipeline(self, shared: DiffusionPipeline, scheduler) -> DiffusionPipeline:
        return AutoPipelineForInpainting.from_pipe(shared, scheduler=scheduler)

    def call_arguments(self) -> dict:
        return {**super().call_arguments(), "image": self.image, "mask_image": self.soft_mask,
                "strength": self.strength, "padding_mask_crop": self.mask_padding}

    def _finish(self, output) -> None:
        output.images = [overlay(image, self.image, self.soft_mask) for image in output.images]
        super()._finish(output)

    def parameter_fields(self, seed: int) -> dict:
        return {"Denoising strength": f"{self.strength:g}", **super().parameter_fields(seed),
                "Mask blur": f"{self.mask_blur:g}", **mask_fields(self.mask),
                **({} if self.mask_padding is None else {"Only masked padding": str(self.mask_padding)})}


def inpainting_run(studio: Studio, request, image: Image.Image, mask: Image.Image, **options):
    """The run for a request: a SamplingRequest inpaints with a pixel model, a TextToImageRequest with Stable
    Diffusion; a mask that keeps nothing samples from scratch."""
    if isinstance(request, TextToImageRequest):
        if is_all_redrawn(mask) and options.get("strength", 1.0) == 1:
            return TextToImageRun(studio, request, options.get("preview_every", 0))
        return InpaintRun(studio, request, image, mask, **options)
    if is_all_redrawn(mask):
        return SamplingRun(studio, request)
    return PixelInpaintRun(studio, request, image, mask, **options)
