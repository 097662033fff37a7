"""LoRA adapters on the cached text-to-image pipelines.

A LoRA loads once into the cached pipeline of the model it was trained on (`load_lora_weights`, under its
catalog name) and stays there while the pipeline is cached: nothing reloads. Which adapter is active, and at
what weight, is state of the shared UNet and text encoder, so each request sets its own (or switches all off)
and keeps them for its whole call under the pipeline's lock: requests on one model run one at a time and never
see each other's adapter. No LoRA, or weight 0, switches adapters off: exactly the base model's images.
"""

from __future__ import annotations

import re
import threading
import weakref

from ...catalog import LORA
from ..studio import Studio

MAX_LORA_WEIGHT = 2.0

_PIPELINE_LOCKS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_PIPELINE_LOCKS_GUARD = threading.Lock()


def pipeline_lock(pipeline) -> threading.Lock:
    """One lock per cached pipeline (keyed by its UNet, which request copies share), held for a whole call."""
    with _PIPELINE_LOCKS_GUARD:
        return _PIPELINE_LOCKS.setdefault(pipeline.unet, threading.Lock())


def adapter_name(lora: str) -> str:
    """PEFT adapter names become module attribute names: letters, digits and underscores only."""
    return "lora_" + re.sub(r"\W", "_", lora)


def loaded_adapters(pipeline) -> set[str]:
    return {name for names in pipeline.get_list_adapters().values() for name in names}


def check_lora(studio: Studio, lora: str | None, weight: float, model: str) -> None:
    """A LoRA request the model can take: a catalog LoRA, trained on this model; the model not compiled."""
    if not lora:
        return
    entry = studio.catalog.get(lora)
    if entry.kind != LORA:
        raise ValueError(f"{lora!r} is a {entry.kind} model, not a LoRA.")
    base = studio.catalog.get(model).source
    if entry.base_model != base:
        raise ValueError(f"LoRA {lora!r} was trained on {entry.base_model}; choose that model to use it "
                         f"(this one is {base}).")
    if studio.settings.compile:
        raise ValueError("LoRA adapters change the UNet that compilation froze: run the server without DS_COMPILE "
                         "to use them.")


def apply_lora(studio: Studio, pipeline, lora: str | None, weight: float) -> None:
    """Make `lora` at `weight` the only active adapter (none when lora is empty or weight 0); hold the
    pipeline's lock while calling this and until the call that uses it ends."""
    if not lora or weight == 0:
        if loaded_adapters(pipeline):
            pipeline.disable_lora()
        return
    name = adapter_name(lora)
    if name not in loaded_adapters(pipeline):
        pipeline.load_lora_weights(studio.catalog.get(lora).source, adapter_name=name)
    pipeline.enable_lora()
    pipeline.set_adapters([name], [weight])
