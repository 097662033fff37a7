"""Few-step sampling in the Text to image tab: an LCM-LoRA brings the settings it samples with, and a Fast
button finds the model's LCM-LoRA and sets it up.

A LoRA distilled for few steps (training mode lcm-lora, or latent-consistency/lcm-lora-sdv1-5 online) only
draws well with its own sampler, a handful of steps and CFG scale 1 (the guidance is distilled into it): so
choosing one switches the tab to those, and says so, instead of leaving a visitor with 25 blurry DPM++ steps.
"""

from __future__ import annotations

import gradio as gr

from ..catalog import LORA, TEXT_TO_IMAGE, UnknownModelError
from ..service.studio import Studio
from .i18n import tr


def few_step_settings(entry) -> list:
    """Sampler, steps, CFG scale and LoRA weight for a distilled LoRA, and the note saying why."""
    sampling = entry.few_step
    note = tr(f"**{entry.name} is an {sampling.sampler}-LoRA**: sampler {sampling.sampler}, {sampling.steps} steps "
              f"and CFG scale {sampling.guidance_scale:g} (its guidance is distilled in), weight 1.")
    return [sampling.sampler, sampling.steps, sampling.guidance_scale, 1.0, note]


def settings_for_lora(studio: Studio, lora_name: str) -> list:
    """What choosing a LoRA changes: a distilled one sets its sampling; any other leaves the settings alone."""
    try:
        entry = studio.catalog.get(lora_name) if lora_name else None
    except UnknownModelError:
        entry = None
    if entry is None or entry.few_step is None:
        return [gr.skip()] * 4 + [""]
    return few_step_settings(entry)


def fast_preset(studio: Studio, model_name: str) -> list:
    """The chosen model's distilled LoRA (a local one first) with its settings, or why there is none."""
    try:
        base = studio.catalog.find(model_name, TEXT_TO_IMAGE).source
    except (UnknownModelError, ValueError) as err:
        return [gr.skip()] * 5 + [f"**{tr(str(err))}**"]
    shared = set(studio.model_names(LORA))
    loras = [entry for entry in studio.catalog.few_step_loras(base) if entry.name in shared]
    local = [entry for entry in loras if entry.available_offline()]
    if not loras:
        return [gr.skip()] * 5 + [tr(
            f"**{model_name} has no LCM-LoRA yet.** Distil one in the Training tab (LCM distillation) and it is "
            f"listed here.")]
    entry = (local or loras)[0]
    return [entry.name, *few_step_settings(entry)]


def wire_few_step(studio: Studio, fast: gr.Button, note: gr.Markdown, model, lora, scheduler, steps, guidance,
                  lora_weight) -> None:
    lora.input(lambda name: settings_for_lora(studio, name), lora, [scheduler, steps, guidance, lora_weight, note],
               api_visibility="private")
    fast.click(lambda name: fast_preset(studio, name), model, [lora, scheduler, steps, guidance, lora_weight, note],
               api_visibility="private")
