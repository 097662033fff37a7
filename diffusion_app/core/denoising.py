"""The reverse-diffusion loop, unrolled as in the diffusers docs, reporting every step."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import torch
from diffusers import DDIMScheduler, DiffusionPipeline
from diffusers.utils.torch_utils import randn_tensor
from PIL import Image

from .portable_state import portable_state


@dataclass
class DenoiseStep:
    index: int  # 0-based position in the loop
    total: int
    timestep: int
    sample: torch.Tensor  # x_t after this step
    pred_original: torch.Tensor  # the scheduler's predicted clean image x0

    def __getstate__(self) -> dict:
        return portable_state(self)


class NonFiniteOutputError(ValueError):
    """A sample with NaN or infinite values: a numerical failure, reported to the user like bad input."""


def to_pil(batch: torch.Tensor) -> list[Image.Image]:
    """[-1, 1] NCHW tensors -> PIL images, exactly as diffusers' DDPMPipeline converts them."""
    if not torch.isfinite(batch).all():
        raise NonFiniteOutputError(
            "The model produced NaN or infinite values, so there is no image to show. Try another seed, "
            "scheduler or model; with float16 weights, try --dtype float32."
        )
    array = (batch / 2 + 0.5).clamp(0, 1).cpu().permute(0, 2, 3, 1).float().numpy()
    return DiffusionPipeline.numpy_to_pil(array)


def initial_noise(unet, generators: list[torch.Generator]) -> torch.Tensor:
    """x_T for one image per generator, drawn on the CPU so a seed gives the same image on any device.
    It is float32 whatever the weights' dtype: see run_unet."""
    size = unet.config.sample_size
    height, width = (size, size) if isinstance(size, int) else size
    shape = (len(generators), unet.config.in_channels, height, width)
    return randn_tensor(shape, generator=generators, device=unet.device, dtype=torch.float32)


def eager_module(unet: torch.nn.Module) -> torch.nn.Module:
    """The module torch.compile wrapped (the UNet itself when it is not compiled)."""
    return getattr(unet, "_orig_mod", unet)


def run_unet(unet, sample: torch.Tensor, t, class_labels: torch.Tensor | None = None) -> torch.Tensor:
    """The UNet's prediction for a float32 x_t, in float32.

    The weights may be bfloat16 or float16; only the UNet runs in their dtype. x_t stays float32, so the
    scheduler's arithmetic, repeated over up to a thousand steps, loses nothing to rounding. A compiled
    UNet serves the calls made without gradients; a call that needs them (exact guidance) runs the eager
    module, since the compiled graph was made, and its weights frozen, for inference.
    """
    model = eager_module(unet) if torch.is_grad_enabled() else unet
    return model(sample.to(unet.dtype), t, class_labels=class_labels).sample.float()


def predict_noise(unet, sample: torch.Tensor, t, class_labels: torch.Tensor | None = None,
                  guidance_scale: float = 1.0, null_label: int | None = None) -> torch.Tensor:
    """The UNet's prediction; with a scale other than 1, classifier-free guided as in diffusers' DiT pipeline:
    the conditional and "no class" (null_label) predictions come from one doubled batch and are mixed as
    uncond + scale * (cond - uncond). Scale 1 is the plain conditional prediction, 0 the unconditional one."""
    if guidance_scale == 1:
        return run_unet(unet, sample, t, class_labels)
    if class_labels is None or null_label is None:
        raise ValueError("Classifier-free guidance needs a class-conditional model trained with a null class.")
    labels = torch.cat([class_labels, torch.full_like(class_labels, null_label)])
    conditional, unconditional = run_unet(unet, torch.cat([sample, sample]), t, labels).chunk(2)
    return unconditional + guidance_scale * (conditional - unconditional)


def denoise(unet, scheduler, sample: torch.Tensor, steps: int, generators: list[torch.Generator],
            class_labels: torch.Tensor | None = None, eta: float = 0.0, guidance_scale: float = 1.0,
            null_label: int | None = None, start_index: int = 0) -> Iterator[DenoiseStep]:
    """The reverse process, one DenoiseStep per scheduler step; from the start_index-th of the `steps` timesteps
    when `sample` is an x_t partway (image to image).

    Guided predictions overshoot: their x0 leaves [-1, 1] and the scheduler clips it. DDIM then has to
    re-derive the noise from the clipped x0 (use_clipped_model_output), or its next x_t mixes a clipped
    image with unclipped noise and drifts off the data (grey, blotchy digits). DDPM's step needs no help.
    """
    step_options = {}
    if isinstance(scheduler, DDIMScheduler):
        step_options = {"eta": eta, "use_clipped_model_output": guidance_scale != 1}
    scheduler.set_timesteps(steps)
    timesteps = scheduler.timesteps[start_index:]
    for index, t in enumerate(timesteps):
        with torch.no_grad():
            noise_pred = predict_noise(unet, sample, t, class_labels, guidance_scale, null_label)
            output = scheduler.step(noise_pred, t, sample, generator=generators, **step_options)
        sample = output.prev_sample
        yield DenoiseStep(index, len(timesteps), int(t), sample, output.pred_original_sample)
