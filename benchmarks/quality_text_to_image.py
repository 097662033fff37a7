"""The text-to-image sections of bench_quality.py that share its sampling: emoji-t2i's few-step LCM-LoRA and its
tiny decoder, each against emoji-t2i as a user samples it, and weighted prompts on emoji-t2i."""

from __future__ import annotations

import random
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from diffusers import StableDiffusionPipeline, UNet2DConditionModel

from diffusion_app.core.grid import image_grid
from diffusion_app.hardware import CPU_FIRST_CLICK
from diffusion_app.service.generation.text2img import (DEFAULT_GUIDANCE_SCALE, TextToImageRequest, TextToImageRun,
                                                       generate)
from diffusion_app.service.models.tiny_autoencoders import tiny_autoencoder, tiny_decode
from diffusion_app.service.studio import Studio
from diffusion_app.training.colour_captions import dominant_colour
from quality_emoji import COLOUR_PROMPTS, colour_hits, r_precision

REPO_ROOT = Path(__file__).resolve().parent.parent
DOCS = REPO_ROOT / "docs"
LCM_COLOUR_POINTS = 0.10  # emoji-t2i-lcm: colour hits at most this far below emoji-t2i's at 25 steps
LCM_R_PRECISION_FACTOR = 3
LCM_TIME_FRACTION = 0.2
LCM_SAMPLING = dict(lora="emoji-t2i-lcm", scheduler="LCM", steps=4, guidance_scale=1.0)
FULL_SAMPLING = dict(steps=25)  # DPM++ 2M at the tab's default CFG scale
TAESD_TIME_FRACTION = 0.5  # emoji-t2i-taesd: decode time at most this share of the VAE's
TAESD_MEAN_DIFFERENCE = 8.0  # of 255, against the VAE's images of the same latents
TAESD_COLOUR_POINTS = 0.05
WEIGHTS = ("1.6", "1", "0.4")
WEIGHTED_SHAPES = ("heart", "circle", "square", "apple")
WEIGHTED_MARGIN = 0.2


def text_to_image(studio: Studio, model: str, prompts: list[str], seed: int, per_prompt: int = 1,
                  **fields) -> list:
    """64 px images, one request per prompt; fields override the first-click steps and the default CFG scale."""
    fields = {"steps": CPU_FIRST_CLICK.text2img_steps, "guidance_scale": DEFAULT_GUIDANCE_SCALE, **fields}
    images = []
    for index, prompt in enumerate(prompts):
        request = TextToImageRequest(model, prompt, width=64, height=64, num_images=per_prompt,
                                     seed=seed + index * per_prompt, **fields)
        images += generate(studio, request)[0]
    return images


def random_unet_studio(studio: Studio, seed: int, work: Path) -> Studio:
    """A studio whose emoji-t2i-random-unet is emoji-t2i with an untrained UNet: the chance baseline."""
    folder = work / "models" / "emoji-t2i-random-unet"
    if not folder.is_dir():
        pipeline = StableDiffusionPipeline.from_pretrained(REPO_ROOT / "models" / "emoji-t2i")
        torch.manual_seed(seed)
        pipeline.unet = UNet2DConditionModel.from_config(pipeline.unet.config)  # the same model, untrained
        pipeline.save_pretrained(folder)
    return Studio(replace(studio.settings, models_dir=work / "models"))


def timed_colour_samples(studio: Studio, seed: int, **fields) -> tuple[dict, float]:
    """4 samples per colour prompt, and the seconds per image they took (after one warm-up request)."""
    text_to_image(studio, "emoji-t2i", COLOUR_PROMPTS[:1], seed, **fields)
    start = time.perf_counter()
    by_prompt = {prompt: text_to_image(studio, "emoji-t2i", [prompt], seed, per_prompt=4, **fields)
                 for prompt in COLOUR_PROMPTS}
    return by_prompt, (time.perf_counter() - start) / (4 * len(COLOUR_PROMPTS))


def bench_emoji_t2i_lcm(studio: Studio, clip, train: list[str], held_out: list[str], seed: int, work: Path) -> bool:
    """The LCM-LoRA at 4 steps against the full model at 25: colour prompts, CLIP-R-precision, time per image."""
    full, full_seconds = timed_colour_samples(studio, seed, **FULL_SAMPLING)
    fast, fast_seconds = timed_colour_samples(studio, seed, **LCM_SAMPLING)
    full_hits, fast_hits = colour_hits(full), colour_hits(fast)
    colour_ok = fast_hits >= full_hits - LCM_COLOUR_POINTS
    captions = random.Random(seed).sample(held_out, 100)
    precision = r_precision(clip, text_to_image(studio, "emoji-t2i", captions, seed, **LCM_SAMPLING), captions,
                            train + held_out)
    chance = r_precision(clip, text_to_image(random_unet_studio(studio, seed, work), "emoji-t2i-random-unet",
                                             captions, seed, **FULL_SAMPLING), captions, train + held_out)
    precision_ok = precision >= LCM_R_PRECISION_FACTOR * max(chance, 0.01)
    time_ok = fast_seconds <= LCM_TIME_FRACTION * full_seconds
    print(f"emoji-t2i-lcm: colour prompts {fast_hits:.0%} at 4 LCM steps, {full_hits:.0%} for emoji-t2i at 25 steps "
          f"(target within {LCM_COLOUR_POINTS:.0%}) {'ok' if colour_ok else 'MISSED'}")
    print(f"emoji-t2i-lcm: CLIP-R-precision on 100 held-out captions {precision:.0%} (random UNet {chance:.0%}; "
          f"target {LCM_R_PRECISION_FACTOR}x) {'ok' if precision_ok else 'MISSED'}")
    print(f"emoji-t2i-lcm: {fast_seconds:.3f} s per image against {full_seconds:.3f} s: "
          f"{fast_seconds / full_seconds:.2f}x (target <= {LCM_TIME_FRACTION}x) {'ok' if time_ok else 'MISSED'}")
    image_grid([image for images in fast.values() for image in images], 8).save(DOCS / "emoji_t2i_lcm_samples.png")
    print("emoji-t2i-lcm: docs/emoji_t2i_lcm_samples.png (the same prompts and seeds as emoji_t2i_samples.png)")
    return colour_ok and precision_ok and time_ok


def decode_seconds(decode, latents: torch.Tensor, repeats: int = 5) -> float:
    """Best seconds per image of a decode of these latents."""
    decode(latents)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        decode(latents)
        best = min(best, time.perf_counter() - start)
    return best / len(latents)


@torch.no_grad()
def bench_emoji_t2i_taesd(studio: Studio, seed: int) -> bool:
    """The tiny decoder against the VAE on the colour prompts' final latents: time, pixels and colour."""
    pipeline = studio.pipeline("emoji-t2i", "text-to-image")
    tiny = tiny_autoencoder(studio, "emoji-t2i-taesd")
    latents = {}
    for index, prompt in enumerate(COLOUR_PROMPTS):  # the tab's call, stopped before the decode
        run = TextToImageRun(studio, TextToImageRequest("emoji-t2i", prompt, width=64, height=64, num_images=4,
                                                        seed=seed + 4 * index, steps=CPU_FIRST_CLICK.text2img_steps))
        latents[prompt] = run.pipeline(**run.call_arguments(), output_type="latent").images

    def vae_images(batch):
        decoded = pipeline.vae.decode(batch / pipeline.vae.config.scaling_factor).sample
        return pipeline.image_processor.postprocess(decoded, output_type="pil")

    by_vae = {prompt: vae_images(batch) for prompt, batch in latents.items()}
    by_tiny = {prompt: tiny_decode(tiny, batch) for prompt, batch in latents.items()}
    everything = torch.cat(list(latents.values()))
    vae_seconds = decode_seconds(lambda batch: pipeline.vae.decode(batch / pipeline.vae.config.scaling_factor),
                                 everything)
    tiny_seconds = decode_seconds(lambda batch: tiny.decode(batch), everything)
    difference = np.mean([np.abs(np.asarray(a, dtype=np.float32) - np.asarray(b, dtype=np.float32)).mean()
                          for prompt in latents for a, b in zip(by_vae[prompt], by_tiny[prompt])])
    vae_hits, tiny_hits = colour_hits(by_vae), colour_hits(by_tiny)
    time_ok = tiny_seconds <= TAESD_TIME_FRACTION * vae_seconds
    difference_ok = difference <= TAESD_MEAN_DIFFERENCE
    colour_ok = tiny_hits >= vae_hits - TAESD_COLOUR_POINTS
    print(f"emoji-t2i-taesd: decode {tiny_seconds * 1000:.2f} ms per image against the VAE's "
          f"{vae_seconds * 1000:.2f} ms: {tiny_seconds / vae_seconds:.2f}x (target <= {TAESD_TIME_FRACTION}x) "
          f"{'ok' if time_ok else 'MISSED'}")
    print(f"emoji-t2i-taesd: mean difference from the VAE's images {difference:.1f} of 255 (target <= "
          f"{TAESD_MEAN_DIFFERENCE:g}) {'ok' if difference_ok else 'MISSED'}")
    print(f"emoji-t2i-taesd: colour prompts {tiny_hits:.0%} decoded by it, {vae_hits:.0%} by the VAE (target within "
          f"{TAESD_COLOUR_POINTS:.0%}) {'ok' if colour_ok else 'MISSED'}")
    pairs = [image for prompt in latents for image in by_vae[prompt] + by_tiny[prompt]]
    image_grid(pairs, 8).save(DOCS / "emoji_t2i_taesd_samples.png")
    print("emoji-t2i-taesd: docs/emoji_t2i_taesd_samples.png (per prompt: 4 decoded by the VAE, then by TAESD)")
    return time_ok and difference_ok and colour_ok


def bench_weighted_prompts(studio: Studio, seed: int) -> bool:
    """AUTOMATIC1111's weights on emoji-t2i: `(red:1.6) <shape>` against `(red:0.4) <shape>` over the same seeds,
    8 samples per shape at the tab's settings; the share drawn red must be higher with the higher weight."""
    shares = {}
    for weight in WEIGHTS:
        by_prompt = {f"(red:{weight}) {shape}": text_to_image(studio, "emoji-t2i", [f"(red:{weight}) {shape}"], seed,
                                                              per_prompt=8, **FULL_SAMPLING)
                     for shape in WEIGHTED_SHAPES}
        images = [image for images in by_prompt.values() for image in images]
        shares[weight] = sum(dominant_colour(image) == "red" for image in images) / len(images)
        if weight != "1":
            image_grid(by_prompt[f"(red:{weight}) heart"], 8).save(DOCS / f"weighted_red_{weight}.png")
    ok = shares["1.6"] >= shares["0.4"] + WEIGHTED_MARGIN
    print(f"weighted prompts: red drawn in {shares['1.6']:.0%} of (red:1.6), {shares['1']:.0%} of (red:1) and "
          f"{shares['0.4']:.0%} of (red:0.4) samples ({', '.join(WEIGHTED_SHAPES)}; target: 1.6 at least "
          f"{WEIGHTED_MARGIN:.0%} above 0.4) {'ok' if ok else 'MISSED'}")
    return ok
