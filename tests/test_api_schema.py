"""What "Use via API" publishes is what the server accepts: every generation endpoint (and the forward process)
called with values built from its own published schema, its types and enums, not from the UI's defaults."""

from __future__ import annotations

import re

import numpy as np
import pytest
from gradio_client import Client, handle_file
from PIL import Image

ENDPOINTS = ("/generate_unconditional", "/generate_ddim", "/generate_digits", "/generate_colour_guidance",
             "/generate_clip_guidance", "/generate_text2img", "/generate_image_to_image", "/generate_inpaint",
             "/forward_process")
SMALL = {"Steps": 2, "DDIM steps": 2, "Number of images": 1, "Samples per digit": 1, "Cutouts": 1, "Width": 64,
         "Height": 64, "Prompt": "a red apple"}  # keep the calls quick; still values of the schema's types


@pytest.fixture(scope="module")
def api(server_url):
    client = Client(server_url, verbose=False)
    return client, client.view_api(print_info=False, return_format="dict")["named_endpoints"]


@pytest.fixture(scope="module")
def picture(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("api") / "in.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(path)
    return str(path)


def value_from_schema(parameter: dict, picture: str):
    """A value of the parameter's published type: its default when that fits, else the first of its enum, the
    least of its range, or a file for image inputs."""
    schema, default = parameter["type"], parameter.get("parameter_default")
    kind = schema.get("type")
    if parameter["component"] == "Browserstate":  # the optional browser id: any JSON, left out by API callers
        return default
    if "enum" in schema:
        return default if default in schema["enum"] else schema["enum"][0]
    if kind == "array":
        enum = schema["items"].get("enum", [])
        return [enum[-1]] if enum else []
    if kind == "integer":
        value = SMALL.get(parameter["label"], default)
        assert isinstance(value, int) and not isinstance(value, bool), parameter  # an integer's default is one
        return value
    if kind == "number":
        low = float(re.search(r"between ([-\d.e+]+) and", schema.get("description", "")).group(1)) \
            if "between" in schema.get("description", "") else 0.0
        return float(SMALL.get(parameter["label"], default if default is not None else low))
    if kind == "boolean":
        return bool(default)
    if kind == "string":
        return SMALL.get(parameter["label"], default or "")
    if parameter["component"].lower() == "imageeditor":  # the picture, and no layer painted (the mask comes next)
        return {"background": handle_file(picture), "layers": [], "composite": None}
    if kind == "object" or parameter["component"] == "Image":
        return handle_file(picture)
    raise AssertionError(f"no value for {parameter}")


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_the_schema_describes_what_the_server_accepts(api, picture, tiny_clip, endpoint):
    client, endpoints = api
    parameters = endpoints[endpoint]["parameters"]
    arguments = [value_from_schema(parameter, picture) for parameter in parameters]
    if endpoint == "/generate_clip_guidance":  # the tiny test CLIP, from its config (the default needs a download)
        names = [p["parameter_name"] for p in parameters]
        arguments[names.index("architecture_name")] = "tiny-random-clip"
        arguments[names.index("weights_value")] = str(tiny_clip[1])
    result = client.predict(*arguments, api_name=endpoint)
    assert result is not None


def test_whole_numbers_are_published_as_integers_and_digits_by_name(api):
    _, endpoints = api
    digits = {p["label"]: p["type"] for p in endpoints["/generate_digits"]["parameters"]}
    assert digits["Samples per digit"]["type"] == "integer" and digits["Steps"]["type"] == "integer"
    assert digits["Digits"]["items"] == {"enum": [str(d) for d in range(10)], "type": "string"}
    text = {p["label"]: p["type"]["type"] for p in endpoints["/generate_text2img"]["parameters"]}
    assert text["Width"] == text["Height"] == text["Steps"] == "integer" and text["CFG scale"] == "number"
