"""The inpainting sections of bench_quality.py: RePaint's seam against the replace-the-known-part baseline on
openmoji, and colour prompts inpainted into emoji with emoji-t2i.

The seam is the mean absolute difference, over the pixel pairs that straddle the mask's border (one inside, one
outside, side by side or one above the other), between the two pixels of the pair, less the same in the real
emoji: a filled part that joins its surroundings as the real picture did scores 0, a visible seam more.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from diffusion_app.core.grid import image_grid
from diffusion_app.service.generation.inpainting import REPAINT, REPLACE, PixelInpaintRun, inpainting_run
from diffusion_app.service.generation.sampling import SamplingRequest
from diffusion_app.service.generation.text2img import TextToImageRequest
from diffusion_app.service.studio import Studio
from quality_emoji import COLOUR_PROMPTS, colour_hits

SEAM_RATIO = 0.8  # RePaint's seam at most this share of the baseline's
INPAINT_COLOUR_TARGET = 0.5  # "in most samples": more than half name their prompt's colour inside the mask
REPAINT_SETTINGS = dict(jump_length=5, resampling=5)
ONLY_MASKED_PADDING = 4  # of the 64 px canvas: the mask's 32 px box and 4 px of the face around it


def centred_mask(side: int, fraction: float = 0.5) -> Image.Image:
    """A white square of `fraction` of the side in the middle of a black one."""
    mask = Image.new("L", (side, side))
    low, high = round(side * (1 - fraction) / 2), round(side * (1 + fraction) / 2) - 1
    ImageDraw.Draw(mask).rectangle((low, low, high, high), fill=255)
    return mask


def seam(image: Image.Image, mask: Image.Image) -> float:
    """The mean absolute difference between the pixels of the pairs that straddle the mask's border."""
    pixels = np.asarray(image.convert("RGB"), dtype=np.float64)
    inside = np.asarray(mask) >= 128
    differences = []
    for axis in (0, 1):
        first, second = [slice(None)] * 2, [slice(None)] * 2
        first[axis], second[axis] = slice(None, -1), slice(1, None)
        straddles = inside[tuple(first)] != inside[tuple(second)]
        gap = np.abs(pixels[tuple(first)] - pixels[tuple(second)]).mean(axis=-1)
        differences.append(gap[straddles])
    return float(np.concatenate(differences).mean())


def bench_repaint_seam(studio: Studio, real: list[Image.Image], steps: int, seed: int, docs) -> bool:
    """Inpaint the centre of real emoji with both methods, the same seeds; compare their seams."""
    mask = centred_mask(32)
    seams = {REPAINT: [], REPLACE: []}
    shown = {REPAINT: [], REPLACE: []}
    for index, picture in enumerate(real):
        for method in seams:
            request = SamplingRequest("openmoji", num_images=1, steps=steps, seed=seed + index, scheduler="DDPM")
            run = PixelInpaintRun(studio, request, picture, mask, method, **REPAINT_SETTINGS)
            for _ in run:
                pass
            image = run.images()[0]
            seams[method].append(seam(image, mask) - seam(picture, mask))
            shown[method].append(image)
    repaint, replace = np.mean(seams[REPAINT]), np.mean(seams[REPLACE])
    ok = repaint <= SEAM_RATIO * replace
    print(f"inpaint-repaint: seam (pixel difference across the mask border, less the real emoji's, of 255) over "
          f"{len(real)} emoji with the centre quarter redrawn, {steps} steps: RePaint {repaint:.1f} (jump length "
          f"{REPAINT_SETTINGS['jump_length']}, resampling {REPAINT_SETTINGS['resampling']}) vs replacing the known "
          f"part {replace:.1f}: {repaint / replace:.2f}x (target <= {SEAM_RATIO:.2f}x) {'ok' if ok else 'MISSED'}")
    grid = [image for row in zip(real[:8], shown[REPLACE][:8], shown[REPAINT][:8]) for image in row]
    image_grid(grid, 6).save(docs / "inpaint_repaint.png")
    print("inpaint-repaint: docs/inpaint_repaint.png (the emoji, the baseline, RePaint; two emoji a row)")
    return ok


def bench_inpaint_colour(studio: Studio, picture: Image.Image, seed: int, docs) -> bool:
    """Colour prompts inpainted into the centre of one emoji with emoji-t2i: the colour of the inside, redrawn in
    the whole picture (for reference: at 64 px the face around the mask outweighs the prompt) and only masked (the
    gate: the mask's box and a margin drawn at the model's full size)."""
    side = 64
    canvas = picture.convert("RGB").resize((side, side), Image.Resampling.LANCZOS)
    mask = centred_mask(side)
    box = mask.getbbox()
    hits, shown = {}, []
    only_masked = f"only masked, padding {ONLY_MASKED_PADDING} px"
    for area, padding in (("whole picture", None), (only_masked, ONLY_MASKED_PADDING)):
        insides = {}
        for index, prompt in enumerate(COLOUR_PROMPTS):
            request = TextToImageRequest("emoji-t2i", prompt, width=side, height=side, num_images=4,
                                         seed=seed + 4 * index)
            run = inpainting_run(studio, request, canvas, mask, strength=1.0, mask_blur=0, mask_padding=padding)
            for _ in run:
                pass
            insides[prompt] = [image.crop(box) for image in run.images]
            if padding is not None:
                shown += run.images
        hits[area] = colour_hits(insides)
    ok = hits[only_masked] > INPAINT_COLOUR_TARGET
    print(f"inpaint-colour: the named colour is the dominant hue inside the mask (the centre quarter of an emoji) "
          f"of {4 * len(COLOUR_PROMPTS)} emoji-t2i inpaintings of {len(COLOUR_PROMPTS)} colour prompts: "
          + ", ".join(f"{area} {share:.0%}" for area, share in hits.items())
          + f" (target for only masked: more than {INPAINT_COLOUR_TARGET:.0%}) {'ok' if ok else 'MISSED'}")
    image_grid(shown, 8).save(docs / "inpaint_colour.png")
    print("inpaint-colour: docs/inpaint_colour.png (4 only-masked inpaintings per colour prompt, two prompts a row)")
    return ok
