"""Prompt weights as AUTOMATIC1111 writes them, read by its rules: `(x)` multiplies by 1.1, `[x]` divides by 1.1,
`(x:w)` multiplies by w, brackets nest, an unclosed one reaches to the end, and `\\(` is a bracket. compel, which
encodes the weights (service/generation/weighted_prompts.py), reads its own syntax (`(red)1.3`), and no library on
PyPI parses AUTOMATIC1111's, hence this reader. (`BREAK` is read as a word.)

Text only: the token counter, the attention maps' token list and the encoders all read prompts through it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

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


def prompt_words(prompt: str) -> str:
    """The words of a prompt as the text encoder reads them: `(red:1.3) apple` is "red apple"."""
    return plain_text(attention_pieces(prompt))


def is_weighted(pieces: list[Piece]) -> bool:
    return any(piece.weight != 1 for piece in pieces)


def chunk_count(token_count: int, context: int) -> int:
    """How many context-long chunks a prompt of `token_count` tokens (start and end included) is encoded in: each
    chunk holds context - 2 words between its own start and end tokens."""
    return max(1, -(-(token_count - 2) // (context - 2)))
