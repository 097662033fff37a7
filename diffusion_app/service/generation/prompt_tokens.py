"""A prompt as the text encoder reads it, token by token: what the attention maps and the step-by-step view
label, and where they mark what the encoder never sees."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PromptToken:
    index: int  # position in the text encoder's input
    text: str  # the tokenizer's piece, as it reads it
    role: str  # "start", "word", "end", "padding", or "cut" (past the text encoder's context: never read)
    id: int  # the tokenizer's id of the piece


def prompt_tokens(tokenizer, prompt: str) -> list[PromptToken]:
    """The prompt as the text encoder reads it: start token, words, end token, padding to the context length,
    and after them the pieces the encoder never sees."""
    ids = tokenizer(prompt, truncation=False).input_ids
    limit = tokenizer.model_max_length
    pieces = tokenizer.convert_ids_to_tokens(ids)
    seen, cut = range(1, min(len(ids) - 1, limit - 1)), range(limit - 1, len(ids) - 1)
    tokens = [PromptToken(0, pieces[0], "start", ids[0])]
    tokens += [PromptToken(index, pieces[index], "word", ids[index]) for index in seen]
    tokens.append(PromptToken(len(seen) + 1, pieces[-1], "end", ids[-1]))
    padding_id = tokenizer.pad_token_id
    tokens += [PromptToken(index, "", "padding", padding_id) for index in range(len(seen) + 2, limit)]
    tokens += [PromptToken(limit + offset, pieces[index], "cut", ids[index]) for offset, index in enumerate(cut)]
    return tokens
