"""The live token counter under a prompt box: "12/77 tokens", from the chosen model's tokenizer. Gradio has no
client-side hook into a Python tokenizer, so each change asks the server, at most one request in flight
(`trigger_mode="always_last"`: keys typed meanwhile are counted together once it answers)."""

from __future__ import annotations

import gradio as gr

from ..service.models.prompt_tokens import prompt_tokens
from ..service.studio import Studio
from .i18n import tr


def token_counter(studio: Studio, model: gr.Dropdown, prompt: gr.Textbox, find_entry=None) -> gr.Markdown:
    """A Markdown under `prompt` that counts its tokens with the tokenizer of the chosen model (the catalog's
    entry, or `find_entry(name)`'s where the dropdown takes unlisted models too), as it changes; empty for a
    model without one (a pixel model)."""
    find_entry = find_entry or studio.catalog.get
    counter = gr.Markdown(elem_classes="token-counter")

    def count(name, text):
        try:
            used, limit = prompt_tokens(find_entry(name), text or "", studio.settings.offline)
        except (OSError, ValueError):  # a model that is not here (offline) or not a Stable Diffusion one
            return ""
        if used <= limit:
            return tr(f"{used}/{limit} tokens")
        cut = used - limit
        return tr(f"**{used}/{limit} tokens**: the text encoder does not read the last {cut}")

    gr.on([prompt.change, model.change], count, [model, prompt], counter, trigger_mode="always_last",
          show_progress="hidden", api_visibility="private", queue=False)
    return counter
