"""The augmented views CLIP sees of an image: the cutouts of CLIP guidance, and what the bundled emoji CLIP
is trained on, so that the model knows the views guidance will feed it."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

CUTOUT_AREA = (0.25, 1.0)  # crop area, as a fraction of the image
CUTOUT_ASPECT = (3 / 4, 4 / 3)
CUTOUT_DEGREES = 5.0
FLIP_PROBABILITY = 0.5


def make_cutouts(images: torch.Tensor, count: int, size: tuple[int, int],
                 generators: list[torch.Generator]) -> torch.Tensor:
    """`count` augmented views of each image (N, C, H, W), resampled to size: (N * count, C, *size).

    Each view is one affine resampling: a random crop (area and aspect within CUTOUT_AREA/ASPECT),
    rotated by up to CUTOUT_DEGREES and flipped half of the time; image i draws from generators[i].
    """
    draws = torch.stack([torch.rand(count, 6, generator=generator) for generator in generators]).flatten(0, 1)
    area = CUTOUT_AREA[0] + draws[:, 0] * (CUTOUT_AREA[1] - CUTOUT_AREA[0])
    aspect = torch.exp(math.log(CUTOUT_ASPECT[0]) + draws[:, 1] * math.log(CUTOUT_ASPECT[1] / CUTOUT_ASPECT[0]))
    width = (area * aspect).sqrt().clamp(max=1)  # fractions of the image's width and height
    height = (area / aspect).sqrt().clamp(max=1)
    centre_x = (draws[:, 2] * 2 - 1) * (1 - width)  # the crop stays inside the image
    centre_y = (draws[:, 3] * 2 - 1) * (1 - height)
    angle = torch.deg2rad((draws[:, 4] * 2 - 1) * CUTOUT_DEGREES)
    flip = torch.where(draws[:, 5] < FLIP_PROBABILITY, -1.0, 1.0)
    cos, sin = angle.cos(), angle.sin()
    theta = torch.stack([
        torch.stack([width * cos * flip, -width * sin, centre_x], dim=1),
        torch.stack([height * sin * flip, height * cos, centre_y], dim=1),
    ], dim=1).to(images)
    grid = F.affine_grid(theta, [len(theta), images.shape[1], *size], align_corners=False)
    return F.grid_sample(images.repeat_interleave(count, dim=0), grid, mode="bilinear", padding_mode="reflection",
                         align_corners=False)
