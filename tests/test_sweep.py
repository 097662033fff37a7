"""X/Y/Z sweeps: values as lists and ranges, the cells' plan and batches, and through the API a 2x3 labelled grid
whose cells equal single runs with the same parameters."""

from __future__ import annotations

import numpy as np
import pytest
from gradio_client import Client
from PIL import Image

from diffusion_app.service.generation.sweep import Axis, AxisKind, batches, parse_values, plan_cells
from conftest import TINY_MODEL


@pytest.mark.parametrize("text, kind, values", [
    ("10, 20, 50", AxisKind("int"), [10, 20, 50]),
    ("1-5", AxisKind("int"), [1, 2, 3, 4, 5]),
    ("0-10 (+2.5)", AxisKind("float"), [0.0, 2.5, 5.0, 7.5, 10.0]),
    ("0-1 [5]", AxisKind("float"), [0.0, 0.25, 0.5, 0.75, 1.0]),
    ("5-1", AxisKind("int"), [5, 4, 3, 2, 1]),
    ("DDIM, DDPM", AxisKind("text", ("DDPM", "DDIM")), ["DDIM", "DDPM"]),
])
def test_values_are_lists_or_ranges(text, kind, values):
    assert parse_values(text, kind) == values


@pytest.mark.parametrize("text, kind, message", [
    ("", AxisKind("int"), "needs values"),
    ("1.5, 2", AxisKind("int"), "not a whole number"),
    ("a, b", AxisKind("float"), "not a number"),
    ("Heun", AxisKind("text", ("DDPM", "DDIM")), "not one of DDPM, DDIM"),
    ("0-10 (+0)", AxisKind("float"), "step must be above 0"),
])
def test_bad_values_say_why(text, kind, message):
    with pytest.raises(ValueError, match=message):
        parse_values(text, kind)


def test_cells_and_seed_batches():
    axes = [Axis("Seed", [1, 2, 3, 7]), Axis("Steps", [2, 4])]
    cells = plan_cells(axes, 64)
    assert cells[:4] == [(0, 0), (1, 0), (2, 0), (3, 0)] and len(cells) == 8
    runs = batches(cells, axes, seed_axis=0)
    assert sorted(map(len, runs)) == [1, 1, 3, 3]  # seeds 1, 2, 3 in one batch per steps value; 7 alone
    with pytest.raises(ValueError, match="at most 6"):
        plan_cells(axes, 6)


def pixels(item) -> np.ndarray:
    return np.asarray(Image.open(item["image"] if isinstance(item, dict) else item), dtype=np.float64)


def test_a_2x3_sweep_is_a_labelled_grid_of_single_runs(server_url):
    client = Client(server_url, verbose=False)
    grid, cells, report = client.predict("Steps", "2, 4", "Seed", "5-7", "—", "", TINY_MODEL, 4, 3, 0, True,
                                         api_name="/sweep_unconditional")
    assert "6 cells" in report and len(cells) == 6
    picture = Image.open(grid)
    assert 'X/Y/Z sweep: "Steps: 2, 4; Seed: 5, 6, 7", Cells: 6' in picture.info["parameters"]
    assert picture.width > 2 * 16 and picture.height > 3 * 16  # the cells and their labels
    for index, (steps, seed) in enumerate([(2, 5), (4, 5), (2, 6), (4, 6), (2, 7), (4, 7)]):
        single, _ = client.predict(TINY_MODEL, 1, steps, seed, False, api_name="/generate_unconditional")
        assert np.array_equal(pixels(cells[index]), pixels(single[0])), (steps, seed)
        assert f"Steps: {steps}" in Image.open(cells[index]["image"]).info["parameters"]
    with pytest.raises(Exception, match="at most 64"):
        client.predict("Steps", "1-100", "Seed", "1-2", "—", "", TINY_MODEL, 1, 3, 0, True,
                       api_name="/sweep_unconditional")
