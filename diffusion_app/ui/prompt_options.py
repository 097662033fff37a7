"""What the Stable Diffusion tabs offer and say about long prompts: the choice to cut them at the text
encoder's context (today's behaviour elsewhere) or encode them in chunks, and the report's line on each."""

from __future__ import annotations

import gradio as gr

from ..service.generation.text2img import TextToImageRun

TRUNCATE_INFO = ("Unticked, a prompt longer than the text encoder's context (77 tokens for CLIP) is encoded in "
                 "chunks, as AUTOMATIC1111 does; ticked, the rest is cut. Weights such as (red:1.3) or [sky] work "
                 "either way.")


def truncate_checkbox() -> gr.Checkbox:
    return gr.Checkbox(False, label="Cut long prompts at the context", info=TRUNCATE_INFO)


def prompt_notes(run: TextToImageRun) -> list[str]:
    """A line per prompt that was cut, or encoded in more than one chunk (untranslated: the caller's tr does it)."""
    token_limit = run.pipeline.tokenizer.model_max_length
    lines = [f"**{label} truncated**: the text encoder reads {token_limit} tokens; it did not see “{dropped}”."
             for label, dropped in run.truncated.items()]
    lines += [f"**{label}** is longer than the text encoder's {token_limit} tokens: encoded in {count} chunks."
              for label, count in run.chunks.items()]
    return lines
