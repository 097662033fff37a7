"""Measures of the bundled emoji models, in emoji-clip's feature space: retrieval, CLIP guidance, CLIP-R-precision,
colour prompts and a Fréchet distance. bench_quality.py runs them and holds the gates."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from scipy import linalg

from diffusion_app.service.models.clip_models import LoadedClip
from diffusion_app.training.colour_captions import dominant_colour

COLOUR_PROMPTS = ["red heart", "orange heart", "yellow heart", "green heart", "blue heart", "purple heart",
                  "red apple", "green apple", "red circle", "orange circle", "yellow circle", "green circle",
                  "blue circle", "purple circle", "blue square", "green square"]


@torch.no_grad()
def image_features(clip: LoadedClip, images: list[Image.Image], batch: int = 128) -> torch.Tensor:
    """Normalised CLIP image features, each image resized to CLIP's input as its preprocessing does."""
    mean = torch.tensor(clip.mean).view(1, 3, 1, 1)
    std = torch.tensor(clip.std).view(1, 3, 1, 1)
    features = []
    for start in range(0, len(images), batch):
        pixels = torch.stack([torch.from_numpy(np.asarray(image.convert("RGB").resize(clip.image_size[::-1],
                                                                                      Image.BICUBIC),
                                                          dtype=np.float32) / 255).permute(2, 0, 1)
                              for image in images[start:start + batch]])
        features.append(F.normalize(clip.model.encode_image((pixels - mean) / std).float(), dim=-1))
    return torch.cat(features)


@torch.no_grad()
def text_features(clip: LoadedClip, texts: list[str]) -> torch.Tensor:
    return F.normalize(clip.model.encode_text(clip.tokenizer(texts)).float(), dim=-1)


def retrieval(clip: LoadedClip, images: list[Image.Image], captions: list[str]) -> tuple[float, float]:
    """Text-to-image retrieval: the share of captions whose own image ranks first, and among the first five."""
    similarity = text_features(clip, captions) @ image_features(clip, images).T
    ranks = (similarity > similarity.diagonal()[:, None]).sum(dim=1)
    return (ranks < 1).float().mean().item(), (ranks < 5).float().mean().item()


def r_precision(clip: LoadedClip, images: list[Image.Image], captions: list[str], pool: list[str],
                candidates: int = 100, seed: int = 0) -> float:
    """CLIP-R-precision: the share of images that retrieve their own caption first among it and
    `candidates` - 1 others drawn from the pool."""
    rng = random.Random(seed)
    features = image_features(clip, images)
    hits = 0
    for feature, caption in zip(features, captions):
        others = rng.sample([text for text in pool if text != caption], candidates - 1)
        hits += int((text_features(clip, [caption, *others]) @ feature).argmax() == 0)
    return hits / len(images)


def redness(images: list[Image.Image]) -> float:
    """Mean red minus the mean of green and blue over the images' pixels, 0-255: higher is redder."""
    pixels = np.stack([np.asarray(image.convert("RGB"), dtype=np.float64) for image in images])
    return float((pixels[..., 0] - pixels[..., 1:].mean(axis=-1)).mean())


def frechet_distance(a: torch.Tensor, b: torch.Tensor) -> float:
    """The Fréchet distance between Gaussians fitted to two sets of features (FID's formula)."""
    a, b = a.double().numpy(), b.double().numpy()
    mean_a, mean_b = a.mean(axis=0), b.mean(axis=0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root, _ = linalg.sqrtm(cov_a @ cov_b, disp=False)
    return float(((mean_a - mean_b) ** 2).sum() + np.trace(cov_a + cov_b - 2 * root.real))


def open_folder_images(folder: Path) -> list[Image.Image]:
    return [Image.open(path).convert("RGB") for path in sorted(folder.glob("*.png"))]


# The sections of bench_quality.py that use these measures.

def bench_emoji_clip(clip: LoadedClip, images: list[Image.Image], captions: list[str], factor: float) -> bool:
    """Held-out retrieval against chance; passes when top-1 and top-5 are each `factor` times chance or more."""
    top1, top5 = retrieval(clip, images, captions)
    chance1, chance5 = 1 / len(captions), min(1.0, 5 / len(captions))
    ok = top1 >= factor * chance1 and top5 >= factor * chance5
    print(f"emoji-clip: text-to-image retrieval among the {len(captions)} held-out emoji: top-1 {top1:.1%} "
          f"(chance {chance1:.2%}), top-5 {top5:.1%} (chance {chance5:.2%}); target {factor:g}x chance "
          f"{'ok' if ok else 'MISSED'}")
    return ok


def bench_clip_guidance(clip: LoadedClip, unguided: list[Image.Image], guided: list[Image.Image],
                        prompt: str) -> bool:
    """Guided samples must be closer to the prompt in CLIP's space, and redder for a red prompt."""
    target = text_features(clip, [prompt])[0]
    before = (image_features(clip, unguided) @ target).mean().item()
    after = (image_features(clip, guided) @ target).mean().item()
    red_before, red_after = redness(unguided), redness(guided)
    ok = after > before and red_after > red_before
    print(f"CLIP guidance toward {prompt!r} on openmoji ({len(guided)} samples, the same seeds): similarity to the "
          f"prompt {before:.3f} -> {after:.3f}, redness {red_before:.1f} -> {red_after:.1f} {'ok' if ok else 'MISSED'}")
    return ok


def colour_hits(images_by_prompt: dict[str, list[Image.Image]]) -> float:
    """The share of images whose dominant colour (the rule emoji-t2i's colour captions use) is the colour word
    their prompt starts with."""
    hits = [dominant_colour(image) == prompt.split()[0] for prompt, images in images_by_prompt.items() for image in images]
    return sum(hits) / len(hits)
