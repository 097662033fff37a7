"""Widgets and helpers shared by the tabs."""

from __future__ import annotations

import functools
import logging
import math
from pathlib import Path

import gradio as gr
import torch

from ..catalog import TEXT_TO_IMAGE
from ..service.generation.archive import zip_images
from ..service.models.cache import release_memory
from ..service.models.loading import ModelUnavailableError
from ..service.generation.sampling import MAX_SEED, SamplingRequest
from ..service.studio import Studio
from ..service.visitors import Visitor
from ..service.models.workers import serve_on_a_worker
from .i18n import error

logger = logging.getLogger(__name__)

# OpenMoji emoji (CC BY-SA 4.0) rendered at the bundled models' 32 px: pictures the tabs that start from an
# image start from, shipped inside the package so a published Space has them too.
EXAMPLES = Path(__file__).resolve().parent / "examples"
EXAMPLE_PICTURE = EXAMPLES / "red_heart.png"

OUT_OF_MEMORY = (
    "Out of memory while generating. Try fewer images, fewer steps or a smaller size; "
    "the memory this request held has been freed."
)


def reports_errors(handler):
    """Turn a generator handler's failures into a message for the user who clicked; never a stack trace.

    A failed request frees what it held on the accelerator, so the next one starts clean.
    """

    @functools.wraps(handler)
    def wrapper(*args, **kwargs):
        try:
            yield from handler(*args, **kwargs)
        except gr.Error:
            raise
        except (ValueError, ModelUnavailableError) as err:
            raise error(str(err)) from err
        except torch.OutOfMemoryError as err:
            logger.warning("request ran out of memory: %s", err)
            release_memory()
            raise error(OUT_OF_MEMORY) from err
        except Exception as err:
            logger.exception("request failed")
            release_memory()
            raise error(f"Generation failed ({type(err).__name__}): {err}") from err

    return wrapper


def runs_on_gpu(studio: Studio, estimate):
    """Decorate a handler that runs a model (its first argument names the model). On ZeroGPU the GPU exists only
    inside `@spaces.GPU` calls, each run in a forked process, for the seconds `estimate` (called with the
    handler's own arguments) says, capped by DS_GPU_SECONDS_CAP. With several GPUs each run goes to a worker of
    its own (service/workers.py). Elsewhere the handler is unchanged. `gpu_seconds` stays on it, for the tests
    that check every model-using handler has it."""

    def seconds(*args, **kwargs) -> int:
        try:
            return min(studio.settings.gpu_seconds_cap, estimate(*args, **kwargs))
        except (TypeError, ValueError):  # inputs the handler will refuse with a message: ask for the least
            return 1

    def decorate(handler):
        if studio.settings.zerogpu:
            import spaces

            handler = spaces.GPU(duration=seconds)(handler)
        if len(studio.pool.workers) > 1:
            handler = serve_on_a_worker(studio.pool, handler, model_of=lambda model, *_, **__: model)
        handler.gpu_seconds = seconds
        return handler

    return decorate


def generation_queue(studio: Studio) -> dict:
    """Event options for GPU-heavy work: every tab's Generate shares one concurrency group.

    Cheap events (reading parameters, listing models) stay outside it, so they never wait behind a run. With
    several generation workers, or Ray replicas, as many runs go at once as there are workers or replicas.
    """
    workers = studio.ray.concurrency if studio.ray is not None else len(studio.pool.workers)
    limit = workers if workers > 1 else studio.settings.concurrency_limit
    return {"concurrency_id": "generation", "concurrency_limit": limit}


def chosen_entry(studio: Studio, name: str):
    """The catalog entry of the model chosen in a text-to-image tab; on a private server, whose dropdowns take
    custom values, also an unlisted hub id or local folder."""
    return studio.catalog.get(name) if studio.settings.public else studio.catalog.find(name, TEXT_TO_IMAGE)


def model_dropdown(studio: Studio, kind: str, none_choice: str | None = None, **overrides) -> gr.Dropdown:
    """The catalog's models of a kind (after `none_choice`, when the choice may be none)."""
    dropdown = gr.Dropdown(**{
        "choices": model_choices(studio, kind, none_choice),
        "value": "" if none_choice else studio.catalog.default(kind),
        "label": "Model",
        "info": "Bundled models work offline; hub models download on first use when online.",
        **overrides,
    })
    dropdown.model_kind = kind  # model_choices.refresh_model_choices keeps its choices in step with the catalog
    dropdown.none_choice = none_choice
    return dropdown


def model_choices(studio: Studio, kind: str, none_choice: str | None = None, visitor: Visitor | None = None) -> list:
    """The models of a kind the visitor may use; a public server's page starts with the shared ones."""
    return ([(none_choice, "")] if none_choice else []) + studio.model_names(kind, visitor)


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


def zip_download(studio: Studio, gallery: gr.Gallery) -> None:
    """A button that packs the gallery's PNGs, parameters included, into one zip (the gallery needs type="filepath")."""
    with gr.Row():
        button = gr.Button("Download all as zip", size="sm")
        archive = gr.File(label="All images", visible=False)

    def download_zip(items):
        try:
            archive_path = zip_images([path for path, _ in items or []], studio.settings.data_dir / "downloads")
        except ValueError as err:
            raise error(str(err)) from err
        return gr.File(archive_path, visible=True)

    button.click(download_zip, gallery, archive, api_visibility="private", concurrency_limit=None)


def examples(rows: list[list], inputs: list, label: str) -> gr.Examples:
    """gr.Examples of rows that give every one of the tab's inputs, less the tick boxes: Gradio shows a tick box's
    example as "true"/"false" whatever the page's language, and an example leaves the boxes as the visitor set
    them."""
    kept = [index for index, component in enumerate(inputs) if not isinstance(component, gr.Checkbox)]
    return gr.Examples([[row[index] for index in kept] for row in rows], [inputs[index] for index in kept], label=label)


def how_it_works(markdown: str) -> None:
    """A closed accordion explaining, with the formula, what the tab computes."""
    with gr.Accordion("How it works", open=False):
        gr.Markdown(markdown, latex_delimiters=[{"left": "$$", "right": "$$", "display": True},
                                                {"left": "$", "right": "$", "display": False}])


def whole_number(value, label: str) -> int:
    """Widgets and API clients may send 4.0 for 4; anything else that is not whole is an error."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or int(value) != value:
        raise ValueError(f"{label} must be a whole number, got {value!r}.")
    return int(value)


def sampling_request(model_name, count, step_count, seed_value, use_random_seed, count_label="Number of images",
                     **options) -> SamplingRequest:
    """A SamplingRequest from the widgets every sampling tab shares; other fields come as keyword options."""
    return SamplingRequest(model=model_name, num_images=whole_number(count, count_label),
                           steps=whole_number(step_count, "Steps"), seed=chosen_seed(seed_value, use_random_seed),
                           **options)


def chosen_seed(seed, random_seed: bool) -> int | None:
    return None if random_seed else whole_number(seed, "Seed")


def number(value, label: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{label} must be a number, got {value!r}.")
    return float(value)
