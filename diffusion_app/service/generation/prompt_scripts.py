"""The prompts of a Stable Diffusion image's script (Show the code): plain text for the pipeline to encode, or,
when they carry AUTOMATIC1111's weights or run past the text encoder's context without being cut, the
embeddings compel makes of them, written out as weighted_prompts.py makes them, so that the script remakes the
image without the app."""

from __future__ import annotations

from ...core.prompt_weights import attention_pieces, prompt_words
from .weighted_prompts import needs_embeddings

COMPEL_SETUP = '''\
# The prompts' weights, in AUTOMATIC1111's syntax, read into (text, weight) pieces, and prompts longer than the
# text encoder's context encoded in chunks: compel makes the text embeddings the pipeline is given.
compel = Compel(tokenizer=pipeline.tokenizer, text_encoder=pipeline.text_encoder, truncate_long_prompts={truncate})
PROMPT = {prompt_pieces}  # {prompt!r}
{negative_setting}with torch.no_grad():
    prompt_embeds = compel.build_conditioning_tensor_for_prompt_object(FlattenedPrompt(PROMPT))[0][0]
{negative_encoding}'''

NEGATIVE_ENCODING = '''\
    negative_prompt_embeds = compel.build_conditioning_tensor_for_prompt_object(FlattenedPrompt(NEGATIVE_PROMPT))[0][0]
    # the shorter padded with the empty prompt's embedding to the longer's chunks
    prompt_embeds, negative_prompt_embeds = compel.pad_conditioning_tensors_to_same_length(
        [prompt_embeds, negative_prompt_embeds])
'''

COMPEL_IMPORTS = "from compel import Compel\nfrom compel.prompt_parser import FlattenedPrompt, Fragment\n"


def pieces_code(text: str) -> str:
    return "[" + ", ".join(f"Fragment({piece.text!r}, {piece.weight!r})" for piece in attention_pieces(text)) + "]"


def prompt_code(fields: dict, tokenizer) -> tuple[str, str, str]:
    """(imports, the lines that encode the prompts before the call, the call's prompt arguments) for an image's
    PNG parameters; the first two are empty when the pipeline encodes the prompts itself."""
    prompt, negative_prompt = fields.get("Prompt", ""), fields.get("Negative prompt", "")
    truncate = fields.get("Long prompts") == "truncated"
    if not needs_embeddings(tokenizer, [prompt, negative_prompt], truncate):
        arguments = (f"    prompt={prompt_words(prompt)!r},\n"
                     f"    negative_prompt={prompt_words(negative_prompt)!r},")
        return "", "", arguments
    guided = float(fields.get("CFG scale", 1)) > 1
    setup = COMPEL_SETUP.format(
        truncate=truncate, prompt_pieces=pieces_code(prompt), prompt=prompt,
        negative_setting=f"NEGATIVE_PROMPT = {pieces_code(negative_prompt)}  # {negative_prompt!r}\n" if guided else "",
        negative_encoding=NEGATIVE_ENCODING if guided else "")
    arguments = "    prompt_embeds=prompt_embeds," + ("\n    negative_prompt_embeds=negative_prompt_embeds," * guided)
    return COMPEL_IMPORTS, setup, arguments
