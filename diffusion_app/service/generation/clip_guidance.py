"""CLIP guidance: steer x0 toward a text prompt through CLIP embeddings of augmented cutouts.

Each guided step embeds a few random cutouts of every predicted clean image (a resized crop to CLIP's
input size, a small rotation, a flip, CLIP's normalisation) and lowers their spherical distance to the
prompt's embedding. The gradient is scaled by sqrt(alpha_bar_t) of the step's timestep, so steps where
x0 is still a blur steer less.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ...core.cutouts import make_cutouts
from ...core.portable_state import portable_state
from ..models.clip_models import ClipSpec, LoadedClip
from .guidance import Objective
from ..studio import Studio

MAX_CUTOUTS = 64


def checked_prompt(prompt) -> str:
    prompt = str(prompt or "").strip()
    if not prompt:
        raise ValueError("Enter a prompt: CLIP guidance steers the images toward it.")
    return prompt


def checked_cutouts(cutouts) -> int:
    if isinstance(cutouts, bool) or not isinstance(cutouts, (int, float)) or int(cutouts) != cutouts \
            or not 1 <= cutouts <= MAX_CUTOUTS:
        raise ValueError(f"Cutouts must be a whole number from 1 to {MAX_CUTOUTS}, got {cutouts!r}.")
    return int(cutouts)


def spherical_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Half the squared great-circle distance between unit vectors: 2 * arcsin(|a - b| / 2) ** 2."""
    return (a - b).norm(dim=-1).div(2).arcsin().pow(2).mul(2)


class ClipObjective(Objective):
    """Mean spherical distance between CLIP embeddings of an image's cutouts and the prompt's embedding."""

    def __init__(self, clip: LoadedClip, prompt: str, cutouts: int):
        self.clip = clip
        self.clip_label = clip.spec.label
        self.prompt = checked_prompt(prompt)
        self.cutouts = checked_cutouts(cutouts)
        tokens = clip.tokenizer([self.prompt]).to(clip.device)
        with torch.no_grad():
            self.text_embedding = F.normalize(clip.model.encode_text(tokens).float(), dim=-1)
        self.truncation = truncation_note(clip, self.prompt)

    def clip_inputs(self, x0: torch.Tensor, generators: list[torch.Generator]) -> torch.Tensor:
        """The cutouts of x0 in [-1, 1] (grayscale repeated to RGB), normalised as CLIP expects."""
        images = (x0.float().to(self.clip.device) + 1) / 2
        if images.shape[1] == 1:
            images = images.expand(-1, 3, -1, -1)
        cutouts = make_cutouts(images, self.cutouts, self.clip.image_size, generators)
        mean = torch.tensor(self.clip.mean, device=cutouts.device).view(1, -1, 1, 1)
        std = torch.tensor(self.clip.std, device=cutouts.device).view(1, -1, 1, 1)
        return (cutouts - mean) / std

    def loss(self, x0: torch.Tensor, generators: list[torch.Generator]) -> torch.Tensor:
        embeddings = F.normalize(self.clip.model.encode_image(self.clip_inputs(x0, generators)).float(), dim=-1)
        distances = spherical_distance(embeddings, self.text_embedding)
        return distances.view(len(x0), self.cutouts).mean(dim=1).to(x0.device)

    def gradient_weight(self, alpha_bar: float) -> float:
        return math.sqrt(alpha_bar)

    def parameters(self) -> dict:
        return {"Guidance": "CLIP", "CLIP model": self.clip_label, "Cutouts": self.cutouts}

    def __getstate__(self) -> dict:
        """The objective as it comes back from a Ray replica with its run: its settings, not the CLIP model."""
        return portable_state(self, kept_here=("clip", "text_embedding"))


@dataclass(frozen=True)
class ClipPrompt:
    """What CLIP guidance steers toward, made into a ClipObjective by the run, in the process that runs it: the
    CLIP model loads beside the pipeline, on a Ray replica as in this process."""

    spec: ClipSpec
    prompt: str
    cutouts: int

    def bound(self, studio: Studio) -> ClipObjective:
        return clip_objective(studio, self.spec, self.prompt, self.cutouts)


def truncation_note(clip: LoadedClip, prompt: str) -> str | None:
    """A sentence saying the prompt was cut to CLIP's context length, or None when it fits."""
    tokenizer = clip.tokenizer
    if hasattr(tokenizer, "encode"):  # open_clip's own tokenizer; + the start and end tokens
        length = len(tokenizer.encode(prompt)) + 2
    else:  # a Hugging Face tokenizer counts its special tokens itself
        length = len(tokenizer.tokenizer(prompt)["input_ids"])
    context = tokenizer.context_length
    if length <= context:
        return None
    return (f"The prompt is {length} tokens long but {clip.spec.label} reads at most {context}, so it was "
            f"truncated: words past that point do not steer the images.")


def clip_objective(studio: Studio, spec: ClipSpec, prompt: str, cutouts: int) -> ClipObjective:
    """Check the prompt and cutouts, then load the CLIP model (slow; may need the network) and embed the prompt."""
    prompt, cutouts = checked_prompt(prompt), checked_cutouts(cutouts)
    return ClipObjective(studio.clip(spec), prompt, cutouts)
