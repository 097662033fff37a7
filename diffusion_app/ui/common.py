"""Widgets and helpers shared by the tabs."""

from __future__ import annotations

import functools
import logging
import math

import gradio as gr

from ..service.loading import ModelUnavailableError
from ..service.sampling import MAX_SEED
from ..service.studio import Studio

logger = logging.getLogger(__name__)

# Low-resolution samples stay crisp when the browser scales them up.
CSS = ".pixelated img { image-rendering: pixelated; }"


def reports_errors(handler):
    """Turn a generator handler's failures into a message for the user who clicked; never a stack trace."""

    @functools.wraps(handler)
    def wrapper(*args, **kwargs):
        try:
            yield from handler(*args, **kwargs)
        except (ValueError, ModelUnavailableError) as err:
            raise gr.Error(str(err)) from err
        except gr.Error:
            raise
        except Exception as err:
            logger.exception("request failed")
            raise gr.Error(f"Generation failed ({type(err).__name__}): {err}") from err

    return wrapper


def model_dropdown(studio: Studio, kind: str, **overrides) -> gr.Dropdown:
    dropdown = gr.Dropdown(**{
        "choices": studio.catalog.names(kind),
        "value": studio.catalog.default(kind),
        "label": "Model",
        "info": "Bundled models work offline; hub models download on first use when online.",
        **overrides,
    })
    dropdown.model_kind = kind  # model_choices.refresh_model_choices keeps its choices in step with the catalog
    return dropdown


def seed_controls() -> tuple[gr.Number, gr.Checkbox]:
    with gr.Row():
        seed = gr.Number(value=0, precision=0, minimum=0, maximum=MAX_SEED, label="Seed",
                         info="Image i of a batch uses seed + i.")
        random_seed = gr.Checkbox(value=True, label="Random seed", info="The seed used is reported below.")
    return seed, random_seed


def run_buttons() -> tuple[gr.Button, gr.Button]:
    """Generate and Stop, side by side; wire Stop with `stop.click(None, cancels=[event])`."""
    with gr.Row():
        generate = gr.Button("Generate", variant="primary")
        stop = gr.Button("Stop", variant="stop")
    return generate, stop


def whole_number(value, label: str) -> int:
    """Widgets and API clients may send 4.0 for 4; anything else that is not whole is an error."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or int(value) != value:
        raise ValueError(f"{label} must be a whole number, got {value!r}.")
    return int(value)


def chosen_seed(seed, random_seed: bool) -> int | None:
    return None if random_seed else whole_number(seed, "Seed")


def number(value, label: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{label} must be a number, got {value!r}.")
    return float(value)
