"""The catalog model a training job starts from: checked to be of a kind the job can train from, and to be
on this machine when the server runs offline; it sets the resolution (and, for image models, the channels)."""

from __future__ import annotations

from dataclasses import replace

from ...catalog import TEXT_TO_IMAGE, UNCONDITIONAL
from .options import TEXT_KINDS, JobOptions
from ..models.model_configs import component_config, native_resolution
from ..studio import Studio
from ..visitors import Visitor


def base_model(studio: Studio, options: JobOptions, visitor: Visitor | None = None) -> tuple[JobOptions, str]:
    """The options with the base model's resolution (and channels), and the model's source. The model is one the
    visitor may use: on a public server not another visitor's trained model."""
    if options.base_model not in studio.model_names(visitor=visitor):
        raise ValueError(f"Unknown model {options.base_model!r}: choose a listed model to fine-tune.")
    entry = studio.catalog.get(options.base_model)
    wanted = TEXT_TO_IMAGE if options.kind in TEXT_KINDS else UNCONDITIONAL
    if entry.kind != wanted:
        raise ValueError(f"Model {entry.name!r} is {entry.kind}; this kind of job starts from {article(wanted)} model.")
    if studio.settings.offline and not entry.available_offline():
        raise ValueError(f"Model {entry.name!r} is not on this machine and the server runs offline; "
                         "choose a local model or train from scratch.")
    resolution = native_resolution(entry)
    if resolution is None or (options.kind == TEXT_TO_IMAGE and options.from_scratch):
        return options, entry.source
    if options.kind in TEXT_KINDS:
        return replace(options, resolution=resolution), entry.source
    grayscale = component_config(entry, "unet")["in_channels"] == 1
    return replace(options, resolution=resolution, grayscale=grayscale), entry.source


def article(word: str) -> str:
    return f"{'an' if word[0] in 'aeiou' else 'a'} {word}"
