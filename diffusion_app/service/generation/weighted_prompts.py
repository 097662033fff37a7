"""Prompts as AUTOMATIC1111 writes them: `(red:1.3) apple, [background]`, and prompts longer than the text
encoder's context, turned into the text embeddings a Stable Diffusion pipeline takes as `prompt_embeds`.

The weights and the long-prompt chunks are encoded by compel, the library made for this with diffusers:
weights scale a token's embedding away from the empty prompt's (under 1, towards the prompt without it), and a
long prompt is split at a word's end into chunks of the context less its start and end tokens, each encoded on
its own and joined, as AUTOMATIC1111 does. compel reads its own syntax (`(red)1.3`), not AUTOMATIC1111's, and no
library on PyPI parses AUTOMATIC1111's, so `attention_pieces` below does, by its rules: `(x)` multiplies by 1.1,
`[x]` divides by 1.1, `(x:w)` sets w, brackets nest, an unclosed one reaches to the end, and `\\(` is a bracket.
(`BREAK` is read as a word.)

A prompt without weights that fits goes to the pipeline as text, as before, so its images do not change.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch

ROUND_BRACKET_WEIGHT = 1.1
SQUARE_BRACKET_WEIGHT = 1 / 1.1
# An escaped character, a weight closing a round bracket, a bracket, or a run of anything else.
ATTENTION_PATTERN = re.compile(r"\\(.)|:\s*([+-]?(?:\d+(?:\.\d*)?|\.\d+))\s*\)|([()\[\]])|([^\\()\[\]:]+|:)", re.S)


@dataclass(frozen=True)
class Piece:
    text: str
    weight: float


def attention_pieces(prompt: str) -> list[Piece]:
    """The prompt's text in pieces of one weight each, neighbours of the same weight joined."""
    pieces: list[list] = []
    open_brackets: list[tuple[str, int]] = []  # ("(" or "[", where its text starts in `pieces`)

    def scale(start: int, factor: float) -> None:
        for piece in pieces[start:]:
            piece[1] *= factor

    for escaped, weight, bracket, text in ATTENTION_PATTERN.findall(prompt):
        if escaped or text:
            pieces.append([escaped or text, 1.0])
        elif weight and open_brackets and open_brackets[-1][0] == "(":
            scale(open_brackets.pop()[1], float(weight))
        elif weight:  # ":1.3)" with no round bracket open is text
            pieces.append([f":{weight})", 1.0])
        elif bracket in "([":
            open_brackets.append((bracket, len(pieces)))
        elif open_brackets and open_brackets[-1][0] == {")": "(", "]": "["}[bracket]:
            scale(open_brackets.pop()[1], ROUND_BRACKET_WEIGHT if bracket == ")" else SQUARE_BRACKET_WEIGHT)
        else:  # a closing bracket that closes nothing is text
            pieces.append([bracket, 1.0])
    for bracket, start in reversed(open_brackets):
        scale(start, ROUND_BRACKET_WEIGHT if bracket == "(" else SQUARE_BRACKET_WEIGHT)
    joined: list[Piece] = []
    for text, weight in pieces:
        weight = round(weight, 6)  # 1.1 * (1 / 1.1) is 1
        if joined and joined[-1].weight == weight:
            joined[-1] = Piece(joined[-1].text + text, weight)
        else:
            joined.append(Piece(text, weight))
    return joined or [Piece("", 1.0)]


def plain_text(pieces: list[Piece]) -> str:
    """The words the text encoder reads, without the weights' syntax."""
    return "".join(piece.text for piece in pieces)


def is_weighted(pieces: list[Piece]) -> bool:
    return any(piece.weight != 1 for piece in pieces)


def needs_embeddings(tokenizer, prompts: list[str], truncate: bool) -> bool:
    """Whether the prompts need compel: a weight, or (unless truncating) more tokens than the context."""
    for prompt in prompts:
        pieces = attention_pieces(prompt)
        if is_weighted(pieces):
            return True
        if not truncate and len(tokenizer(plain_text(pieces)).input_ids) > tokenizer.model_max_length:
            return True
    return False


def chunk_count(tokenizer, prompt: str) -> int:
    """How many context-long chunks a long prompt is encoded in (1 when it fits)."""
    words = len(tokenizer(plain_text(attention_pieces(prompt))).input_ids) - 2
    return max(1, -(-words // (tokenizer.model_max_length - 2)))


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
