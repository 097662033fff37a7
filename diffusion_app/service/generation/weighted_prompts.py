"""Prompts as AUTOMATIC1111 writes them: `(red:1.3) apple, [background]`, and prompts longer than the text
encoder's context, turned into the text embeddings a Stable Diffusion pipeline takes as `prompt_embeds`.

The prompt is read into weighted pieces by core/prompt_weights.py; the pieces and the long-prompt chunks are
encoded by compel, the library made for this with diffusers: weights scale a token's embedding away from the empty
prompt's (under 1, towards the prompt without it), and a long prompt is split at a word's end into chunks of the
context less its start and end tokens, each encoded on its own and joined, as AUTOMATIC1111 does.

A prompt without weights that fits goes to the pipeline as text, as before, so its images do not change.
"""

from __future__ import annotations

import torch

from ...core.prompt_weights import attention_pieces, chunk_count, is_weighted, plain_text, prompt_words


def needs_embeddings(tokenizer, prompts: list[str], truncate: bool) -> bool:
    """Whether the prompts need compel: a weight, or (unless truncating) more tokens than the context."""
    for prompt in prompts:
        pieces = attention_pieces(prompt)
        if is_weighted(pieces):
            return True
        if not truncate and len(tokenizer(plain_text(pieces)).input_ids) > tokenizer.model_max_length:
            return True
    return False


def prompt_chunks(tokenizer, prompt: str) -> int:
    """How many context-long chunks a long prompt is encoded in (1 when it fits)."""
    return chunk_count(len(tokenizer(prompt_words(prompt)).input_ids), tokenizer.model_max_length)


def weighted_embeddings(pipeline, prompt: str, negative_prompt: str, truncate: bool, guided: bool) -> dict:
    """The pipeline's `prompt_embeds` (and, with guidance, `negative_prompt_embeds`, padded to the prompt's
    length with the empty prompt's embedding, or the prompt to the negative's)."""
    from compel import Compel  # imported here: only weighted and long prompts need it
    from compel.prompt_parser import FlattenedPrompt, Fragment

    compel = Compel(tokenizer=pipeline.tokenizer, text_encoder=pipeline.text_encoder,
                    truncate_long_prompts=truncate, device=pipeline.text_encoder.device)

    def encode(text: str) -> torch.Tensor:
        fragments = [Fragment(piece.text, piece.weight) for piece in attention_pieces(text)]
        with torch.no_grad():
            return compel.build_conditioning_tensor_for_prompt_object(FlattenedPrompt(fragments))[0][0]

    if not guided:
        return {"prompt_embeds": encode(prompt)}
    prompt_embeds, negative_prompt_embeds = compel.pad_conditioning_tensors_to_same_length(
        [encode(prompt), encode(negative_prompt)])
    return {"prompt_embeds": prompt_embeds, "negative_prompt_embeds": negative_prompt_embeds}
