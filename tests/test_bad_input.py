"""Out-of-range, wrong-type and extreme values through the API of every tab: a clear error each, and the
server keeps serving. The README's input table lists the same ranges."""

import pytest
from gradio_client import Client
from gradio_client.exceptions import AppError

from conftest import TINY_MODEL

MAX_BATCH = 8  # the default DS_MAX_BATCH the test server runs with
WRONG_TYPE = "Expected a `float`"

ENDPOINTS = {
    "/generate_unconditional": (TINY_MODEL, 1, 3, 5, False),
    "/generate_ddim": (TINY_MODEL, 4, 0.0, 1, 2, 5, False),
    "/generate_digits": ("tiny-digits", ["3"], 1, 3, "DDIM", 5, False, 3.0),
    "/generate_text2img": ("tiny-sd", "a red apple", "", "Euler", 2, 7.5, 64, 64, 1, 1, 5, False),
    "/generate_colour_guidance": (TINY_MODEL, "#ff0000", 5, "fast", 1, 2, "DDIM", False, 1, 0, 1, 5, False),
}

BAD_INPUTS = {
    "/generate_unconditional": [
        (0, "no-such-model", "not in the list of choices"),
        (0, None, "Unknown model None"),
        (1, 0, "less than minimum value 1"),
        (1, MAX_BATCH + 1, f"greater than maximum value {MAX_BATCH}"),
        (1, "four", WRONG_TYPE),
        (2, 0, "less than minimum value 1"),
        (2, 1e300, "greater than maximum value 1000"),
        (2, None, WRONG_TYPE),
        (3, -1, "less than minimum value 0"),
        (3, 2**32, "greater than maximum value 4294967295"),
        (3, "x", "Expected a"),
    ],
    "/generate_ddim": [
        (1, 1001, "greater than maximum value 1000"),
        (2, -0.1, "less than minimum value 0"),
        (2, 1.5, "greater than maximum value 1"),
        (2, "zero", WRONG_TYPE),
        (3, -1e300, "less than minimum value 1"),
        (4, 0, "less than minimum value 1"),
        (4, 101, "greater than maximum value 100"),
    ],
    "/generate_digits": [
        (1, [], "Choose at least one"),
        (1, ["10"], "not in the list of choices"),
        (1, [3], "not in the list of choices"),  # the names, as the schema says, not their indices
        (1, ["three"], "not in the list of choices"),
        (2, MAX_BATCH + 1, f"greater than maximum value {MAX_BATCH}"),
        (3, 0, "less than minimum value 1"),
        (4, "PNDM", "not in the list of choices"),
        (7, 10.5, "greater than maximum value 10"),
        (7, -1, "less than minimum value 0"),
    ],
    "/generate_text2img": [
        (0, "no/such-model", "not available"),
        (1, None, "Prompt must be text"),
        (3, "Heun", "not in the list of choices"),
        (4, 151, "greater than maximum value 150"),
        (5, 0.5, "less than minimum value 1"),
        (6, 100, "multiple of 8"),
        (7, 4096, "greater than maximum value 2048"),
        (8, MAX_BATCH + 1, f"greater than maximum value {MAX_BATCH}"),
        (10, -5, "less than minimum value 0"),
    ],
    "/generate_colour_guidance": [
        (1, "not a colour", "Colour must be like #ff8000"),
        (2, 201, "greater than maximum value 200"),
        (3, "sideways", "not in the list of choices"),
        (8, 0, "less than minimum value 1"),
        (9, 1.5, "greater than maximum value 1"),
    ],
}


@pytest.fixture(scope="module")
def client(server_url):
    return Client(server_url, verbose=False)


@pytest.mark.parametrize("api_name", list(ENDPOINTS))
def test_every_bad_input_gets_a_clear_error_and_the_server_keeps_serving(client, api_name):
    for index, bad, message in BAD_INPUTS[api_name]:
        args = list(ENDPOINTS[api_name])
        args[index] = bad
        with pytest.raises(AppError, match=message):
            client.predict(*args, api_name=api_name)
    assert client.predict(*ENDPOINTS[api_name], api_name=api_name)
