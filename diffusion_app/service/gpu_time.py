"""How long a generation request will hold the GPU, estimated from its inputs before it runs: what a ZeroGPU
Space asks for each call (`@spaces.GPU(duration=...)`). A shorter request gets better queue priority and spends
less of a visitor's daily quota (2 minutes unsigned, 5 signed in), so the estimate follows the work:

    seconds = start-up + steps x max(floor, UNet passes x images x sample pixels x cost per pixel-pass)

UNet passes are 2 with classifier-free guidance and about 3 with exact guidance (which also runs the UNet
backwards); a pass costs in proportion to the pixels of the model's sample (the latents, for Stable Diffusion),
with a floor per step for small models, whose GPU time is launch overhead. The costs are rough figures for a
ZeroGPU slice of an H200 in float16 (Stable Diffusion 1.5's UNet, 25 ms a pass at 64x64 latents), doubled for
safety; they have not been measured on ZeroGPU. The result is capped by DS_GPU_SECONDS_CAP.
"""

from __future__ import annotations

import math

from ..catalog import TEXT_TO_IMAGE

START_UP_SECONDS = 10.0  # moving the preloaded weights onto the GPU, the final decode and image conversion
SAFETY = 2.0
SECONDS_PER_PIXEL_PASS = {TEXT_TO_IMAGE: 6e-6}  # a 860M-parameter UNet on latents
PIXEL_UNET_SECONDS_PER_PIXEL_PASS = 2e-6  # pixel-space DDPM UNets, 4-114M parameters, on pixels
FLOOR_SECONDS_PER_STEP = 0.01
EXACT_GUIDANCE_PASSES = 3.0
CUTOUTS_PER_PASS = 4  # CLIP guidance: four cutouts through CLIP and back cost about one UNet pass


def gpu_seconds(kind: str, steps: int, images: int, pixels: int, passes: float = 1.0, cap: int = 120) -> int:
    """Whole seconds of GPU a request of this kind and size needs, at least START_UP_SECONDS, at most cap."""
    cost = SECONDS_PER_PIXEL_PASS.get(kind, PIXEL_UNET_SECONDS_PER_PIXEL_PASS)
    per_step = max(FLOOR_SECONDS_PER_STEP, passes * images * pixels * cost)
    return min(cap, math.ceil(START_UP_SECONDS + SAFETY * steps * per_step))


def guided_passes(method: str) -> float:
    """UNet passes a guided step costs: the exact method also runs the UNet backwards."""
    return EXACT_GUIDANCE_PASSES if method == "exact" else 1.0
