"""How many of its text encoder's tokens a prompt takes, counted by the model's own tokenizer, for the counter
under each prompt box. Only the tokenizer loads (a few files, no weights), once per model, so counting while a
visitor types costs no pipeline load."""

from __future__ import annotations

import functools

from transformers import CLIPTokenizer

from ...catalog import ModelEntry
from ...core.prompt_weights import prompt_words


@functools.lru_cache(maxsize=32)
def tokenizer_of(source: str, offline: bool) -> CLIPTokenizer:
    """The tokenizer a Stable Diffusion pipeline of this source loads (its `tokenizer` folder)."""
    return CLIPTokenizer.from_pretrained(source, subfolder="tokenizer", local_files_only=offline)


def prompt_tokens(entry: ModelEntry, text: str, offline: bool) -> tuple[int, int]:
    """(the tokens the prompt takes, start and end tokens included, its weights' syntax not; the most the text
    encoder reads in one chunk)."""
    tokenizer = tokenizer_of(entry.source, offline)
    return len(tokenizer(prompt_words(text)).input_ids), tokenizer.model_max_length
