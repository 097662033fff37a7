"""Generation parameters in a PNG text chunk named `parameters`, in the format other diffusion UIs read:

    <prompt>
    Negative prompt: <negative prompt>
    Steps: 20, Sampler: DDIM, CFG scale: 7.5, Seed: 42, Size: 512x512, Model: name

The prompt lines are absent for models without a prompt. Values holding a comma, colon or quote
are written as JSON strings.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from PIL import Image, PngImagePlugin

PARAMETERS_KEY = "parameters"
NEGATIVE_PREFIX = "Negative prompt:"
SETTING_PATTERN = re.compile(r'\s*([\w ]+):\s*("(?:\\.|[^\\"])*"|[^,]*)(?:,|$)')


def format_parameters(settings: dict, prompt: str | None = None, negative_prompt: str | None = None) -> str:
    def value_text(value) -> str:
        text = str(value)
        return json.dumps(text) if any(c in text for c in ',:"\n') else text

    lines = []
    if prompt:
        lines.append(prompt)
    if negative_prompt:
        lines.append(f"{NEGATIVE_PREFIX} {negative_prompt}")
    lines.append(", ".join(f"{key}: {value_text(value)}" for key, value in settings.items() if value is not None))
    return "\n".join(lines)


def parse_parameters(text: str) -> dict[str, str]:
    """The inverse of format_parameters: settings plus 'Prompt' and 'Negative prompt' when present."""
    lines = text.strip().split("\n")
    settings_line = lines.pop() if lines and SETTING_PATTERN.match(lines[-1]) else ""
    parsed: dict[str, str] = {}
    prompt_lines, negative_lines = [], []
    for line in lines:
        if line.startswith(NEGATIVE_PREFIX) or negative_lines:
            negative_lines.append(line.removeprefix(NEGATIVE_PREFIX).strip())
        else:
            prompt_lines.append(line)
    if prompt_lines:
        parsed["Prompt"] = "\n".join(prompt_lines)
    if negative_lines:
        parsed["Negative prompt"] = "\n".join(negative_lines)
    for key, value in SETTING_PATTERN.findall(settings_line):
        value = value.strip()
        parsed[key.strip()] = json.loads(value) if value.startswith('"') else value
    return parsed


def with_parameters(image: Image.Image, text: str) -> Image.Image:
    """Attach the text so that PNG encoders that copy `image.info` (Gradio's does) keep it."""
    image.info[PARAMETERS_KEY] = text
    return image


def save_png(image: Image.Image, path: Path) -> Path:
    info = PngImagePlugin.PngInfo()
    if PARAMETERS_KEY in image.info:
        info.add_text(PARAMETERS_KEY, image.info[PARAMETERS_KEY])
    image.save(path, format="PNG", pnginfo=info)
    return path


def read_parameters(source: str | Path | Image.Image) -> str | None:
    image = source if isinstance(source, Image.Image) else Image.open(source)
    return image.info.get(PARAMETERS_KEY)
