"""The catalog model a training job starts from: checked to be of a kind the job can train from, and to be
on this machine when the server runs offline; it sets the resolution (and, for image models, the channels)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from huggingface_hub import try_to_load_from_cache

from ..catalog import TEXT_TO_IMAGE, UNCONDITIONAL, ModelEntry
from .job_options import TEXT_KINDS, JobOptions
from .studio import Studio


def base_model(studio: Studio, options: JobOptions) -> tuple[JobOptions, str]:
    """The options with the base model's resolution (and channels), and the model's source."""
    entry = studio.catalog.get(options.base_model)
    wanted = TEXT_TO_IMAGE if options.kind in TEXT_KINDS else UNCONDITIONAL
    if entry.kind != wanted:
        raise ValueError(f"Model {entry.name!r} is {entry.kind}; this kind of job starts from {article(wanted)} model.")
    if studio.settings.offline and not entry.available_offline():
        raise ValueError(f"Model {entry.name!r} is not on this machine and the server runs offline; "
                         "choose a local model or train from scratch.")
    unet = component_config(entry, "unet")
    if unet is None or (options.kind == TEXT_TO_IMAGE and options.from_scratch):
        return options, entry.source
    size = unet["sample_size"]
    size = size if isinstance(size, int) else min(size)
    if options.kind in TEXT_KINDS:
        vae = component_config(entry, "vae") or {}
        return replace(options, resolution=size * 2 ** (len(vae.get("block_out_channels", [0] * 4)) - 1)), entry.source
    return replace(options, resolution=size, grayscale=unet["in_channels"] == 1), entry.source


def component_config(entry: ModelEntry, component: str) -> dict | None:
    """A component's config.json in a local pipeline folder or a hub model in the local cache; None when unknown."""
    if entry.is_local:
        path = Path(entry.source) / component / "config.json"
    else:
        cached = try_to_load_from_cache(entry.source, f"{component}/config.json")
        path = Path(cached) if isinstance(cached, str) else None
    return json.loads(path.read_text()) if path is not None and path.is_file() else None


def article(word: str) -> str:
    return f"{'an' if word[0] in 'aeiou' else 'a'} {word}"
