"""Text to image settings read back from a PNG's `parameters` chunk, as this app and other Stable Diffusion UIs
(AUTOMATIC1111's format) write it: the request fields, and a note for each value that cannot be used here."""

from __future__ import annotations

import re
from pathlib import Path

from ...core.metadata import parse_parameters, read_parameters
from ...core.schedulers import TEXT_TO_IMAGE_SCHEDULERS

SIZE_PATTERN = re.compile(r"(\d+)x(\d+)")
NUMBER_FIELDS = {"Steps": ("steps", int), "CFG scale": ("guidance_scale", float), "Seed": ("seed", int),
                 "LoRA weight": ("lora_weight", float)}


def request_fields(text: str) -> tuple[dict, list[str]]:
    """PNG `parameters` text -> TextToImageRequest fields, and notes on the values that could not be used."""
    parsed = parse_parameters(text)
    fields = {"prompt": parsed.get("Prompt", ""), "negative_prompt": parsed.get("Negative prompt", "")}
    notes = []
    for key, (field, convert) in NUMBER_FIELDS.items():
        if key in parsed:
            try:
                fields[field] = convert(parsed[key])
            except ValueError:
                notes.append(f"{key} {parsed[key]!r} is not a number")
    if "Size" in parsed:
        if size := SIZE_PATTERN.fullmatch(parsed["Size"]):
            fields["width"], fields["height"] = int(size[1]), int(size[2])
        else:
            notes.append(f"Size {parsed['Size']!r} is not WIDTHxHEIGHT")
    if parsed.get("Sampler") in TEXT_TO_IMAGE_SCHEDULERS:
        fields["scheduler"] = parsed["Sampler"]
    elif "Sampler" in parsed:
        notes.append(f"sampler {parsed['Sampler']!r} is not offered here")
    if "Model" in parsed:
        fields["model"] = parsed["Model"]
    if "LoRA" in parsed:
        fields["lora"] = parsed["LoRA"]
    if "VAE" in parsed:  # this app names the tiny autoencoder that decoded the image here, as AUTOMATIC1111 its VAE
        fields["tiny_autoencoder"] = parsed["VAE"]
        fields["tiny_final_decode"] = True
    if parsed.get("Long prompts") == "truncated":
        fields["truncate_long_prompts"] = True
    return fields, notes


def request_fields_from_png(path: str | Path) -> tuple[dict, list[str]]:
    """request_fields of an image file's `parameters` chunk; ValueError when there is none."""
    try:
        text = read_parameters(path)
    except OSError as err:
        raise ValueError(f"Could not read the image: {err}") from err
    if not text:
        raise ValueError("This image carries no generation parameters (no PNG text chunk named 'parameters').")
    return request_fields(text)
