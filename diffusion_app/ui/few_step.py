"""Few-step sampling in the Text to image tab: an LCM-LoRA brings the settings it samples with, and a Fast
button finds the model's LCM-LoRA and sets it up.

A LoRA distilled for few steps (training mode lcm-lora, or latent-consistency/lcm-lora-sdv1-5 online) only
draws well with its own sampler, a handful of steps and CFG scale 1 (the guidance is distilled into it): so
choosing one switches the tab to those, and says so, instead of leaving a visitor with 25 blurry DPM++ steps.
"""

from __future__ import annotations

import gradio as gr

from ..catalog import LORA, TEXT_TO_IMAGE, TINY_AUTOENCODER, UnknownModelError
from ..service.models.lora_adapters import MAX_LORA_WEIGHT
from ..service.studio import Studio
from .common import model_dropdown
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


def first_usable(studio: Studio, entries: list, kind: str):
    """The first of these catalog entries the visitor may use, one that loads offline first; None when none."""
    shared = set(studio.model_names(kind))
    usable = [entry for entry in entries if entry.name in shared]
    return next((entry for entry in usable if entry.available_offline()), usable[0] if usable else None)


def fast_preset(studio: Studio, model_name: str) -> list:
    """The chosen model's distilled LoRA with its settings and its tiny decoder (previews every step, and the final
    images), or why there is none. Outputs: LoRA, sampler, steps, CFG, weight, note, tiny decoder, final, every."""
    try:
        entry = studio.catalog.find(model_name, TEXT_TO_IMAGE)
    except (UnknownModelError, ValueError) as err:
        return [gr.skip()] * 5 + [f"**{tr(str(err))}**"] + [gr.skip()] * 3
    if entry.kind != TEXT_TO_IMAGE:
        return [gr.skip()] * 5 + [tr(f"**Fast needs a text-to-image model**; {model_name} is a {entry.kind} "
                                     f"model.")] + [gr.skip()] * 3
    base = entry.source
    lora = first_usable(studio, studio.catalog.few_step_loras(base), LORA)
    tiny = first_usable(studio, studio.catalog.tiny_autoencoders(base), TINY_AUTOENCODER)
    decoder = [tiny.name, True, 1] if tiny else [gr.skip()] * 3
    tiny_note = tr(f"Previews at every step and the final images through the tiny decoder {tiny.name} (untick "
                   f"its box for the VAE's full detail).") if tiny else ""
    if lora is None:
        return [gr.skip()] * 5 + [" ".join([tr(
            f"**{model_name} has no LCM-LoRA yet.** Distil one in the Training tab (LCM distillation) and it is "
            f"listed here."), tiny_note])] + decoder
    *settings, note = few_step_settings(lora)
    return [lora.name, *settings, " ".join([note, tiny_note]).strip(), *decoder]


def lora_controls(studio: Studio, label: str = "LoRA") -> tuple[gr.Dropdown, gr.Slider]:
    """The LoRA to apply (trained on the chosen model) and its weight."""
    with gr.Row():
        lora = model_dropdown(studio, LORA, none_choice="None", label=label,
                              info="Adapters trained in the Training tab on the chosen model.")
        lora_weight = gr.Slider(0, MAX_LORA_WEIGHT, value=1.0, step=0.05, label="LoRA weight",
                                info="0 gives exactly the model's own images.")
    return lora, lora_weight


def tiny_decoder_controls(studio: Studio) -> tuple[gr.Dropdown, gr.Checkbox]:
    """The tiny decoder to preview with, and whether the final images come from it too."""
    with gr.Row():
        tiny = model_dropdown(studio, TINY_AUTOENCODER, none_choice="None", label="Tiny decoder (TAESD)",
                              info="Decodes the latents in a fraction of the VAE's time: previews at every step.")
        tiny_final = gr.Checkbox(False, label="Final images from the tiny decoder too",
                                 info="Faster; a little less detail than the VAE's.")
    return tiny, tiny_final


def wire_few_step(studio: Studio, fast: gr.Button, note: gr.Markdown, model, lora, scheduler, steps, guidance,
                  lora_weight, tiny, tiny_final, preview_every=None) -> None:
    """The LoRA chooser, the Fast button and the tiny decoder's previews; a tab without a preview interval (Image to
    image previews every step with a tiny decoder) leaves preview_every out."""
    lora.input(lambda name: settings_for_lora(studio, name), lora, [scheduler, steps, guidance, lora_weight, note],
               api_visibility="private")
    outputs = [lora, scheduler, steps, guidance, lora_weight, note, tiny, tiny_final]
    if preview_every is None:
        fast.click(lambda name: fast_preset(studio, name)[:-1], model, outputs, api_visibility="private")
        return
    fast.click(lambda name: fast_preset(studio, name), model, [*outputs, preview_every], api_visibility="private")
    # A tiny decoder makes previews cheap: show one every step.
    tiny.input(lambda name: 1 if name else gr.skip(), tiny, preview_every, api_visibility="private")
