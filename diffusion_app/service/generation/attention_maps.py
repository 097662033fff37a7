"""Which part of the image each prompt word looked at: cross-attention maps as in DAAM (Tang et al. 2022).

Every cross-attention layer of a Stable Diffusion UNet lets each latent pixel weigh the prompt's 77 token
embeddings. DAAM reads those weights: for a token, its attention probabilities over the pixels of every
layer, summed over heads, upsampled to one grid and summed over layers and steps, form a heat map of where
that word acted. Here each cross-attention layer gets an attention processor (diffusers' interface for
replacing how a layer attends) that computes the layer's output with the processor it replaces, so the image
is exactly the one the plain pipeline draws, and adds the layer's probabilities, averaged over heads, to a
running total of its UNet level: memory is one map per token and level, whatever the number of layers and
steps. The levels are kept apart because they need not agree: on the bundled emoji-t2i the finest level
attends an object word on the object and the 8x8 level on the background, so their sum hides the object.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F

from ..studio import Studio
from .prompt_tokens import PromptToken, prompt_tokens
from ...core.prompt_weights import prompt_words
from .sampling import require_int
from .text2img import TextToImageRequest, TextToImageRun
from ...core.denoising import eager_module


def layer_grid(latent_height: int, latent_width: int, queries: int) -> tuple[int, int]:
    """The (height, width) of a UNet level with `queries` pixels: the latent halved (rounding up) k times."""
    height, width = latent_height, latent_width
    while height * width > queries:
        height, width = math.ceil(height / 2), math.ceil(width / 2)
    if height * width != queries:
        raise ValueError(f"A cross-attention layer with {queries} pixels is no level of a "
                         f"{latent_height}x{latent_width} latent.")
    return height, width


class AttentionTotals:
    """The running sums of one run's cross-attention maps, one per UNet level: (images, tokens, latent height,
    latent width) for each level's grid, with the number of layer calls added into it."""

    def __init__(self, latent_size: tuple[int, int], guided: bool, current_step, first_step: int, last_step: int):
        self.latent_size = latent_size
        self.guided = guided  # classifier-free guidance: the UNet's batch is [negative prompt, prompt]
        self.current_step = current_step  # () -> the 0-based step being denoised
        self.first_step, self.last_step = first_step, last_step  # 1-based, inclusive
        self.per_level: dict[tuple[int, int], torch.Tensor] = {}
        self.layer_calls: dict[tuple[int, int], int] = {}

    @property
    def recording(self) -> bool:
        return self.first_step <= self.current_step() + 1 <= self.last_step

    def add(self, attention, hidden_states: torch.Tensor, encoder_hidden_states: torch.Tensor) -> None:
        """Add one layer's attention probabilities of the prompt (not of the negative prompt), over its heads."""
        if self.guided:
            half = hidden_states.shape[0] // 2
            hidden_states, encoder_hidden_states = hidden_states[half:], encoder_hidden_states[half:]
        query = attention.head_to_batch_dim(attention.to_q(hidden_states))
        key = attention.head_to_batch_dim(attention.to_k(encoder_hidden_states))
        probabilities = attention.get_attention_scores(query, key)  # (images x heads, pixels, tokens)
        images, heads = hidden_states.shape[0], attention.heads
        grid = layer_grid(*self.latent_size, probabilities.shape[1])
        maps = probabilities.float().reshape(images, heads, *grid, -1).mean(dim=1).permute(0, 3, 1, 2)
        maps = F.interpolate(maps, size=self.latent_size, mode="bicubic", align_corners=False).clamp(min=0)
        self.per_level[grid] = self.per_level[grid] + maps if grid in self.per_level else maps
        self.layer_calls[grid] = self.layer_calls.get(grid, 0) + 1


class CrossAttentionRecorder:
    """The attention processor of one cross-attention layer while a run records: the replaced processor makes the
    output, untouched; the layer's attention probabilities go to the run's totals."""

    def __init__(self, replaced, totals: AttentionTotals):
        self.replaced = replaced
        self.totals = totals

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None, **kwargs):
        if temb is not None:
            kwargs["temb"] = temb
        output = self.replaced(attn, hidden_states, encoder_hidden_states=encoder_hidden_states,
                               attention_mask=attention_mask, **kwargs)
        if encoder_hidden_states is not None and self.totals.recording:
            with torch.no_grad():
                self.totals.add(attn, hidden_states, encoder_hidden_states)
        return output


def level_name(grid: tuple[int, int]) -> str:
    return f"{grid[1]}x{grid[0]}"


@dataclass(frozen=True)
class AttentionMap:
    """One token's attention at each UNet level, averaged over that level's heads, layers and steps."""

    token: PromptToken
    per_level: dict[str, np.ndarray]  # level name ("16x16") -> (latent height, latent width)

    def heat(self, levels: list[str], size: tuple[int, int]) -> np.ndarray:
        """The chosen levels' maps summed (DAAM sums them all), at `size` (height, width), scaled to [0, 1]."""
        chosen = [self.per_level[level] for level in levels if level in self.per_level]
        if not chosen:
            raise ValueError(f"Choose at least one level of {', '.join(self.per_level)}.")
        total = torch.from_numpy(np.sum(chosen, axis=0))[None, None]
        heat = F.interpolate(total, size=size, mode="bicubic", align_corners=False)[0, 0].numpy()
        low, high = heat.min(), heat.max()
        return (heat - low) / (high - low) if high > low else np.zeros_like(heat)


class AttentionMapRun(TextToImageRun):
    """A text-to-image run of one image that also keeps its cross-attention maps, read in steps first_step to
    last_step (1-based, inclusive; 0 for the last step). Same image as the run without maps."""

    def __init__(self, studio: Studio, request: TextToImageRequest, first_step: int = 1, last_step: int = 0,
                 preview_every: int = 0):
        if request.num_images != 1:
            raise ValueError("Attention maps are drawn for one image at a time.")
        # Cut at the context, as the token list below marks it: a map per token the encoder reads, in one chunk.
        super().__init__(studio, replace(request, truncate_long_prompts=True), preview_every)
        last_step = last_step or self.request.steps
        require_int("First step", first_step, 1, self.request.steps)
        require_int("Last step", last_step, first_step, self.request.steps)
        unet = self.pipeline.unet  # the cached pipeline's own
        if eager_module(unet) is not unet:
            raise ValueError("Attention maps need the model uncompiled: start the app without DS_COMPILE.")
        with self._lock:  # a fast tokenizer's settings are shared state
            self.tokens = prompt_tokens(self.pipeline.tokenizer, prompt_words(self.request.prompt))
        scale = self.pipeline.vae_scale_factor
        self.totals = AttentionTotals((self.request.height // scale, self.request.width // scale),
                                      self.request.guidance_scale > 1, lambda: self.steps_done, first_step, last_step)
        self.maps: list[AttentionMap] = []
        self.levels: list[str] = []  # the UNet's cross-attention levels, finest first

    def __getstate__(self) -> dict:
        state = super().__getstate__()
        state.pop("totals", None)  # holds a lambda on the run; the maps are what comes back
        return state

    @contextlib.contextmanager
    def watching_the_call(self):
        """Cross-attention layers record while the pipeline runs; the UNet gets its own processors back after."""
        unet = self.pipeline.unet
        replaced = unet.attn_processors
        unet.set_attn_processor({
            name: CrossAttentionRecorder(processor, self.totals) if name.endswith("attn2.processor") else processor
            for name, processor in replaced.items()})
        try:
            yield
        finally:
            unet.set_attn_processor(replaced)

    def _finish(self, output) -> None:
        super()._finish(output)
        totals = self.totals
        if not totals.per_level:
            raise ValueError("This model has no cross-attention layers, so there are no attention maps.")
        finest_first = sorted(totals.per_level, key=lambda grid: -grid[0] * grid[1])
        self.levels = [level_name(grid) for grid in finest_first]
        averages = {level_name(grid): (totals.per_level[grid][0] / totals.layer_calls[grid]).numpy()
                    for grid in finest_first}
        self.maps = [AttentionMap(token, {level: average[token.index] for level, average in averages.items()})
                     for token in self.tokens if token.role != "cut"]

