"""Every generation is kept in the history: a decorator on the tabs' handlers, and the browser's anonymous id.

The decorator passes the handler's outputs through untouched and, after its last one, keeps that run's images
with the handler's inputs (the tab's controls, in order) so that the History tab can show them and send them
back. It runs outside any ZeroGPU call, in the server's own process. On a public server each image belongs to
the visitor's browser: an anonymous id kept in its local storage (gr.BrowserState), passed as the handler's last
input; API callers may leave it out (on a public server their images are then not kept).
"""

from __future__ import annotations

import functools
import inspect
import uuid

import gradio as gr
from PIL import Image

from ..core.metadata import save_png
from ..service.studio import Studio

VISITOR_STORAGE_KEY = "diffusion-studio-visitor"


HISTORY_ID_API_INFO = {
    "type": "string", "description": "the browser's history id (public servers; optional)",
    "additional_description": "Leave it out. The page passes its browser's anonymous id so the History tab can "
                              "show what that browser made; on a public server, images of calls without one are "
                              "not kept."}


def visitor_state() -> gr.BrowserState:
    """The browser's anonymous history id, described to API and MCP callers as one they may leave out.

    Plain BrowserState describes itself as any JSON (an empty type MCP clients reject as a schema) under the
    label "parameter_N", so every endpoint's API page showed an unexplained `visitor_id=None`. The instance is
    adjusted rather than subclassed: Gradio writes a .pyi stub beside the module of every component subclass.
    """
    state = gr.BrowserState(None, storage_key=VISITOR_STORAGE_KEY)
    state.api_info = lambda: HISTORY_ID_API_INFO
    state.get_config = lambda: {**gr.BrowserState.get_config(state), "label": "History id"}
    return state


def give_visitor_an_id(app: gr.Blocks, visitor_id: gr.BrowserState) -> None:
    """On page load, a browser that has no id yet gets a random one, which it keeps."""
    app.load(lambda known: known or uuid.uuid4().hex, visitor_id, visitor_id, api_visibility="private",
             show_progress="hidden")


def kept_in_history(studio: Studio, tab: str, images_at: int, text_at: int | None = None):
    """Keep the images of the handler's last output (at images_at) with its inputs; args[0] is the model and
    args[text_at] the run's text (a prompt, a colour, the classes)."""

    def decorate(handler):
        signature = inspect.signature(handler)
        parameters = list(signature.parameters.values())
        last = len([p for p in parameters if not isinstance(p.default, gr.Progress)])
        visitor = inspect.Parameter("visitor_id", inspect.Parameter.POSITIONAL_OR_KEYWORD, default=None)

        @functools.wraps(handler)
        def wrapper(*args, **kwargs):
            args = list(args)
            visitor_id = args.pop(last) if len(args) > last else kwargs.pop("visitor_id", None)
            outputs = None
            for outputs in handler(*args, **kwargs):
                yield outputs
            if outputs is not None:
                remember(studio, tab, args[:last], outputs[images_at], text_at, visitor_id)

        wrapper.__signature__ = signature.replace(parameters=[*parameters[:last], visitor, *parameters[last:]])
        return wrapper

    return decorate


def remember(studio: Studio, tab: str, inputs: list, images, text_at: int | None, visitor_id: str | None) -> None:
    if studio.settings.public and not visitor_id:
        return
    images = [image for image in images or [] if isinstance(image, Image.Image)]
    if not images:
        return
    text = inputs[text_at] if text_at is not None else ""
    kept = [keep_input(studio, value) for value in inputs]
    studio.history.add(tab, inputs[0], " ".join(map(str, text)) if isinstance(text, list) else text, kept, images,
                       owner=visitor_id if studio.settings.public else None)


def keep_input(studio: Studio, value):
    """An input as JSON: an image input (image to image's start, the inpainting editor's picture and layers) is
    saved beside the history's images."""
    if isinstance(value, dict):
        return {key: keep_input(studio, item) for key, item in value.items()}
    if isinstance(value, list):
        return [keep_input(studio, item) for item in value]
    if isinstance(value, Image.Image):
        folder = studio.history.folder / "inputs"
        folder.mkdir(exist_ok=True)
        return str(save_png(value, folder / f"{uuid.uuid4().hex}.png"))
    return value
