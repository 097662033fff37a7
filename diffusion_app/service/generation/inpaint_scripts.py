"""Show the code for an inpainted image (service/generation/inpainting.py written out): the script reads the
canvas and the mask beside it, `start.png` and `mask.png`, as the app resized them for the model, so it makes
the same image without the app's resizing.

A pixel model's script runs RePaint's loop with diffusers' RePaintScheduler, or the baseline that puts the known
part back after every step; a Stable Diffusion model's calls diffusers' inpainting pipeline and lays the input
back over the result outside the blurred mask, as the app does.
"""

from __future__ import annotations

from PIL import Image

from ...core.metadata import parse_parameters
from ...core.schedulers import TEXT_TO_IMAGE_SCHEDULERS, UNCONDITIONAL_SCHEDULERS
from .inpainting import KNOWN_PART_SEED_OFFSET, REPAINT, REPAINT_ETA
from .prompt_scripts import prompt_code

FILES = '''\
START = Path(__file__).with_name("start.png")  # the canvas, as the app resized it for the model
MASK = Path(__file__).with_name("mask.png")  # white: redrawn; black: kept
'''

PIXEL_INPAINT_SCRIPT = '''\
"""{title}

    pip install torch diffusers
    python {filename} [image.png]     # from the Diffusion Studio checkout, for a bundled model; start.png and
                                      # mask.png beside this script
"""
import sys
from pathlib import Path

import numpy as np
import torch
from diffusers import {scheduler_class}, UNet2DModel
from PIL import Image

MODEL = {model_source!r}  # {model_note}
SEED = {seed}
STEPS = {steps}
DTYPE = torch.{dtype}  # the weights' dtype; x_t and the scheduler's arithmetic stay float32
{files}{settings}
unet = UNet2DModel.from_pretrained(MODEL, subfolder="unet", torch_dtype=DTYPE)

# The canvas in [-1, 1], and where to redraw (1) or keep (0).
mode = "RGB" if unet.config.in_channels == 3 else "L"
pixels = torch.from_numpy(np.asarray(Image.open(START).convert(mode), dtype=np.float32) / 127.5 - 1)
original = (pixels.unsqueeze(0) if pixels.ndim == 2 else pixels.permute(2, 0, 1)).unsqueeze(0)
redraw = torch.from_numpy(np.asarray(Image.open(MASK).convert("L")) >= 128).float()[None, None]

# x_T: noise drawn on the CPU, so that a seed gives the same image on any device.
generator = torch.Generator("cpu").manual_seed(SEED)
sample = torch.randn(original.shape, generator=generator)

{loop}
# [-1, 1] -> pixels, as diffusers' pipelines convert them.
pixels = (sample / 2 + 0.5).clamp(0, 1)[0].permute(1, 2, 0).numpy()
picture = Image.fromarray((pixels * 255).round().astype("uint8").squeeze())
picture.save(sys.argv[1] if len(sys.argv) > 1 else "image.png")
'''

REPAINT_LOOP = '''\
# RePaint: down the chain, each step joins the known part (noised to the step's level) with the model's step
# for the rest; every JUMP_LENGTH steps it goes back up RESAMPLING times, so the two parts agree at the seam.
scheduler = RePaintScheduler.from_pretrained(MODEL, subfolder="scheduler", eta={eta!r})  # eta 1: DDPM's steps
unet_prediction = RePaintScheduler.load_config(MODEL, subfolder="scheduler").get("prediction_type", "epsilon")
scheduler.set_timesteps(STEPS, JUMP_LENGTH, RESAMPLING)
known = 1 - redraw  # RePaint's mask: 1 where the image is known
previous = scheduler.timesteps[0] + 1
for timestep in scheduler.timesteps:
    if timestep < previous:  # down: a denoising step
        with torch.no_grad():
            noise = unet(sample.to(DTYPE), timestep).sample.float()
        if unet_prediction == "v_prediction":  # RePaint reads the noise: eps = sqrt(a) v + sqrt(1 - a) x_t
            alpha_bar = scheduler.alphas_cumprod[timestep].item()
            noise = alpha_bar ** 0.5 * noise + (1 - alpha_bar) ** 0.5 * sample
        sample = scheduler.step(noise, timestep, sample, original, known, generator).prev_sample
    else:  # back up: the noise of the steps jumped over, added again
        sample = scheduler.undo_step(sample, previous, generator)
    previous = timestep
'''

REPLACE_LOOP = '''\
# The baseline: the sampler's loop, with the known part put back, noised to the next step's level, after every
# step. Its noise comes from a generator of its own, so the image's generator advances as in plain sampling.
scheduler = {scheduler_class}.from_pretrained(MODEL, subfolder="scheduler")
scheduler.set_timesteps(STEPS)
known_noise = torch.Generator("cpu").manual_seed({offset} + SEED)
timesteps = scheduler.timesteps
for index, timestep in enumerate(timesteps):
    with torch.no_grad():
        noise = unet(sample.to(DTYPE), timestep).sample.float()
        sample = scheduler.step(noise, timestep, sample, generator=generator{step_options}).prev_sample
    if index + 1 < len(timesteps):
        fresh = torch.randn(original.shape, generator=known_noise)
        known = scheduler.add_noise(original, fresh, timesteps[index + 1:index + 2])
    else:
        known = original
    sample = redraw * sample + (1 - redraw) * known
'''

LATENT_INPAINT_SCRIPT = '''\
"""{title}

    pip install torch diffusers transformers{compel}
    python {filename} [image.png]     # from the Diffusion Studio checkout, for a bundled model; start.png and
                                      # mask.png beside this script
"""
import sys
from pathlib import Path

import torch
{compel_imports}from diffusers import AutoPipelineForInpainting, {scheduler_class}
from PIL import Image, ImageFilter

MODEL = {model_source!r}  # {model_note}
DTYPE = torch.{dtype}
{files}STRENGTH = {strength!r}  # 1: the masked part from noise
MASK_BLUR = {mask_blur!r}  # pixels over which the redrawn part fades into the kept one
PADDING = {padding!r}  # None: redraw in the whole picture; pixels: only the mask's box and this margin, scaled up

pipeline = AutoPipelineForInpainting.from_pretrained(MODEL, dtype=DTYPE)
pipeline.scheduler = {scheduler_class}.from_config(pipeline.scheduler.config)  # sampler "{sampler}"
start = Image.open(START).convert("RGB")
mask = Image.open(MASK).convert("L")
if MASK_BLUR:
    mask = mask.filter(ImageFilter.GaussianBlur(MASK_BLUR))
{prompt_setup}image = pipeline(
{prompt_arguments}
    image=start,
    mask_image=mask,
    strength=STRENGTH,
    padding_mask_crop=PADDING,
    num_inference_steps={steps},
    guidance_scale={guidance_scale},
    width={width},
    height={height},
    generator=torch.Generator("cpu").manual_seed({seed}),  # noise drawn on the CPU: the same on any device
).images[0]
# The VAE's round trip changes every pixel a little: the input goes back over the result outside the mask.
image = Image.composite(image, start, mask)
image.save(sys.argv[1] if len(sys.argv) > 1 else "image.png")
'''


def inpaint_script(fields: dict, model_source: str, model_note: str, dtype_name: str, tab: str,
                   tokenizer=None) -> str:
    """The script of an inpainted image, from its parameters (and a Stable Diffusion model's tokenizer)."""
    sampler = fields["Sampler"]
    title = f"The {tab} tab's image: {fields['Model']}, {sampler}, {fields['Steps']} steps, seed {fields['Seed']}."
    common = dict(title=title, filename="make_image.py", model_source=model_source, model_note=model_note,
                  dtype=dtype_name, files=FILES)
    if "CFG scale" in fields:  # Stable Diffusion
        width, height = (int(side) for side in fields["Size"].split("x"))
        compel_imports, prompt_setup, prompt_arguments = prompt_code(fields, tokenizer)
        return LATENT_INPAINT_SCRIPT.format(
            **common, scheduler_class=TEXT_TO_IMAGE_SCHEDULERS[sampler].__name__, sampler=sampler,
            strength=float(fields["Denoising strength"]), mask_blur=float(fields["Mask blur"]),
            padding=int(fields["Only masked padding"]) if "Only masked padding" in fields else None,
            compel_imports=compel_imports, compel=" compel" if compel_imports else "", prompt_setup=prompt_setup,
            prompt_arguments=prompt_arguments, steps=int(fields["Steps"]), guidance_scale=float(fields["CFG scale"]),
            width=width, height=height,
            seed=int(fields["Seed"]))
    if fields["Inpainting"] == REPAINT:
        settings = (f"JUMP_LENGTH, RESAMPLING = {int(fields['Jump length'])}, {int(fields['Resampling'])}"
                    "  # go back up every JUMP_LENGTH steps, RESAMPLING times\n")
        scheduler_class, loop = "RePaintScheduler", REPAINT_LOOP.format(eta=REPAINT_ETA)
    else:
        scheduler_class = UNCONDITIONAL_SCHEDULERS[sampler].__name__
        step_options = f", eta={float(fields.get('Eta', 0.0))!r}" if sampler == "DDIM" else ""
        settings = ""
        loop = REPLACE_LOOP.format(scheduler_class=scheduler_class, offset=KNOWN_PART_SEED_OFFSET,
                                   step_options=step_options)
    return PIXEL_INPAINT_SCRIPT.format(**common, scheduler_class=scheduler_class, seed=int(fields["Seed"]),
                                       steps=int(fields["Steps"]), settings=settings, loop=loop)


def inpaint_pictures(parameters_text: str, canvas: Image.Image, mask: Image.Image,
                     made: Image.Image) -> dict[str, Image.Image]:
    """start.png and mask.png for the image `made` from this canvas and mask: resized for the model as the app
    resized them (a pixel model's canvas bicubically in its channels, Stable Diffusion's with Lanczos; the mask to
    the nearest pixel). Empty for an image that is not inpainted (an all-white mask samples from scratch)."""
    fields = parse_parameters(parameters_text)
    if "Mask" not in fields:
        return {}
    if "CFG scale" in fields:
        start = canvas.convert("RGB").resize(made.size, Image.Resampling.LANCZOS)
    else:
        start = canvas.convert("L" if made.mode == "L" else "RGB").resize(made.size, Image.Resampling.BICUBIC)
    return {"start.png": start, "mask.png": mask.convert("L").resize(made.size, Image.Resampling.NEAREST)}
