"""The live token counter under a prompt box: "12/77 tokens", from the chosen model's tokenizer, counting the
words a weighted prompt's syntax leaves (`(red:1.3)` is "red"), and past the context the chunks it is encoded in.
Gradio has no client-side hook into a Python tokenizer, so each change asks the server, at most one request in flight
(`trigger_mode="always_last"`: keys typed meanwhile are counted together once it answers)."""

from __future__ import annotations

import gradio as gr

from ..catalog import TEXT_TO_IMAGE
from ..core.prompt_weights import chunk_count
from ..service.models.prompt_tokens import prompt_tokens
from ..service.studio import Studio
from .common import chosen_entry
from .i18n import tr


def token_counter(studio: Studio, model: gr.Dropdown, prompt: gr.Textbox) -> gr.Markdown:
    """A Markdown under `prompt` that counts its tokens with the chosen model's tokenizer as it changes; empty
    for a pixel model (a tab that takes both) or a model that is not here."""
    counter = gr.Markdown(elem_classes="token-counter")

    def count(name, text):
        if not name:
            return ""
        try:
            entry = chosen_entry(studio, name)
            if entry.kind != TEXT_TO_IMAGE:  # a pixel model: no tokenizer to look for, keystroke after keystroke
                return ""
            used, limit = prompt_tokens(entry, text or "", studio.settings.offline)
        except (OSError, ValueError):  # an unknown model, or a tokenizer that is not here (offline)
            return ""
        if used <= limit:
            return tr(f"{used}/{limit} tokens")
        return tr(f"**{used}/{limit} tokens**: encoded in {chunk_count(used, limit)} chunks, or the last "
                  f"{used - limit} cut when long prompts are cut")

    gr.on([prompt.change, model.change], count, [model, prompt], counter, trigger_mode="always_last",
          show_progress="hidden", api_visibility="private", queue=False)
    return counter
