"""The forward process: an image noised to chosen timesteps, x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps,
with the noise schedule of a model or a named schedule, and the schedule's curves, as the diffusion course
plots them. One noise eps for every t, so the row shows the same noise growing."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from diffusers import DDPMScheduler, UNet2DModel
from PIL import Image

from ...catalog import TEXT_TO_IMAGE
from ...core.denoising import to_pil
from ...core.metadata import format_parameters, with_parameters
from ..models.loading import ModelUnavailableError
from .sampling import MAX_SEED, require_int
from ..studio import Studio

SCHEDULES = ("linear", "scaled_linear", "squaredcos_cap_v2")
MAX_TIMESTEPS = 16
DEFAULT_SIDE = 64  # named schedules: the image's shorter side
MAX_SIDE = 256


@dataclass(frozen=True)
class ForwardRequest:
    schedule: str  # a named schedule (SCHEDULES) or a catalog model, whose schedule and size are used
    timesteps: tuple[int, ...] = (0, 50, 100, 250, 500, 750, 999)
    seed: int = 0


def noise_schedule(studio: Studio, source: str) -> tuple[DDPMScheduler, tuple[int, int] | None, int | None]:
    """The scheduler of a named schedule (Stable Diffusion's betas for scaled_linear) or of a catalog model, with
    the model's sample size and channels (None for a named schedule)."""
    if source in SCHEDULES:
        betas = {"scaled_linear": {"beta_start": 0.00085, "beta_end": 0.012}}.get(source, {})
        return DDPMScheduler(beta_schedule=source, **betas), None, None
    entry = studio.catalog.get(source)
    try:
        scheduler = DDPMScheduler.from_pretrained(entry.source, subfolder="scheduler",
                                                  local_files_only=studio.settings.offline)
        unet = UNet2DModel.load_config(entry.source, subfolder="unet", local_files_only=studio.settings.offline)
    except OSError as err:
        raise ModelUnavailableError(f"The schedule of {source!r} is not available here: {err}") from None
    if entry.kind == TEXT_TO_IMAGE:  # its UNet works on latents: the image keeps its own pixels
        return scheduler, None, None
    size = unet.get("sample_size")
    side = size if isinstance(size, int) else None
    return scheduler, (side, side) if side else None, unet.get("in_channels")


def prepare(image: Image.Image, size: tuple[int, int] | None, channels: int | None) -> torch.Tensor:
    """The image in [-1, 1], NCHW: at the model's size and channels, or with its shorter side at DEFAULT_SIDE."""
    image = image.convert("L" if channels == 1 else "RGB")
    if size is None:
        scale = min(DEFAULT_SIDE, MAX_SIDE) / min(image.size)
        size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    image = image.resize(size, Image.Resampling.BICUBIC)
    pixels = torch.from_numpy(np.asarray(image, dtype=np.float32) / 127.5 - 1)
    return (pixels.unsqueeze(0) if pixels.ndim == 2 else pixels.permute(2, 0, 1)).unsqueeze(0)


def forward_process(studio: Studio, image: Image.Image, request: ForwardRequest) -> tuple[list[Image.Image], dict]:
    """x_t of the image for each requested t (the same noise for all), and the schedule's curves over t."""
    if image is None:
        raise ValueError("Upload an image (or drop one made in another tab) to noise.")
    scheduler, size, channels = noise_schedule(studio, request.schedule)
    steps = scheduler.config.num_train_timesteps
    if not request.timesteps or len(request.timesteps) > MAX_TIMESTEPS:
        raise ValueError(f"Give 1 to {MAX_TIMESTEPS} timesteps.")
    for t in request.timesteps:
        require_int("Timestep", t, 0, steps - 1)
    require_int("Seed", request.seed, 0, MAX_SEED)
    clean = prepare(image, size, channels)
    noise = torch.randn(clean.shape, generator=torch.Generator().manual_seed(request.seed))
    timesteps = torch.tensor(request.timesteps)
    noisy = scheduler.add_noise(clean.expand(len(timesteps), -1, -1, -1), noise.expand(len(timesteps), -1, -1, -1),
                                timesteps)
    images = to_pil(noisy)
    for image_t, t in zip(images, request.timesteps):
        with_parameters(image_t, format_parameters({"Forward process": f"t={t}", "Schedule": request.schedule,
                                                    "Seed": request.seed}))
    return images, schedule_curves(scheduler)


def schedule_curves(scheduler: DDPMScheduler) -> dict[str, np.ndarray]:
    """alpha_bar_t, sqrt(alpha_bar_t) (how much image is left), sqrt(1 - alpha_bar_t) (how much noise) and the
    signal-to-noise ratio alpha_bar / (1 - alpha_bar), for t = 0 .. T-1."""
    alpha_bar = scheduler.alphas_cumprod.double().numpy()
    return {"t": np.arange(len(alpha_bar)), "alpha_bar": alpha_bar, "sqrt(alpha_bar)": np.sqrt(alpha_bar),
            "sqrt(1 - alpha_bar)": np.sqrt(1 - alpha_bar), "SNR": alpha_bar / (1 - alpha_bar)}
