"""Show the code: under a tab's results, the diffusers script that makes the image shown (the gallery's first
after a run, or the one clicked), to copy or download and run in a notebook of one's own. An image made from a
picture (Image to image, Inpaint) downloads as a zip of the script and the pictures it reads, as the app resized
them."""

from __future__ import annotations

import tempfile
import zipfile
from pathlib import Path
from typing import Any, Callable

import gradio as gr
from PIL import Image

from ..core.metadata import read_parameters
from ..service.generation.inpaint_scripts import inpaint_pictures
from ..service.generation.show_code import image_script, start_picture
from ..service.studio import Studio
from .i18n import error

SCRIPT_NAME = "make_image.py"


def picture_it_started_from(picture: Image.Image, parameters_text: str, made: Image.Image) -> dict[str, Image.Image]:
    """Image to image's start.png (none for strength 1, which is sampling from scratch)."""
    if "Denoising strength" not in parameters_text:
        return {}
    return {"start.png": start_picture(parameters_text, picture, made)}


def canvas_and_mask(canvas_view: list, parameters_text: str, made: Image.Image) -> dict[str, Image.Image]:
    """Inpaint's start.png and mask.png, from the gallery that shows the canvas and its mask."""
    canvas, mask = (Image.open(item[0]) if isinstance(item[0], str) else item[0] for item in canvas_view)
    return inpaint_pictures(parameters_text, canvas, mask, made)


def code_panel(studio: Studio, run_event, shown: gr.Gallery | gr.Image, tab_title: str, start=None,
               start_files: Callable[[Any, str, Image.Image], dict[str, Image.Image]] | None = None) -> None:
    """An accordion with the script of the image shown, filled when the run ends and, in a gallery, when an image
    is clicked. `shown` needs type="filepath". `start` is what the tab starts from, and `start_files` makes from
    its value, the image's parameters and the image the pictures the script reads (picture_it_started_from,
    canvas_and_mask)."""
    with gr.Accordion("Show the code", open=False):
        code = gr.Code(language="python", interactive=False, label=SCRIPT_NAME)
        download = gr.DownloadButton("Download the script", visible=False, size="sm")

    def script_of(path: str, start_value=None):
        text = read_parameters(path)
        if not text:
            raise error("This image carries no generation parameters, so there is no code to show for it.")
        try:
            script = image_script(studio.catalog, text, studio.settings.dtype, tab_title, studio.clip_folders(),
                                  studio.settings.clip_configs)
        except (ValueError, KeyError) as err:
            raise error(str(err)) from err
        folder = Path(tempfile.mkdtemp(dir=studio.settings.data_dir / "downloads"))  # one per call: never shared
        (folder / SCRIPT_NAME).write_text(script)
        pictures = start_files(start_value, text, Image.open(path)) if start_files and start_value else {}
        if not pictures:
            return script, gr.DownloadButton(value=str(folder / SCRIPT_NAME), visible=True)
        with zipfile.ZipFile(folder / "make_image.zip", "w") as archive:
            archive.write(folder / SCRIPT_NAME, SCRIPT_NAME)
            for name, picture in pictures.items():
                picture.save(folder / name)
                archive.write(folder / name, name)
        return script, gr.DownloadButton(value=str(folder / "make_image.zip"), visible=True)

    def show_first(items, picture=None):
        """After a run: the script of a gallery's first image, or of the one image shown."""
        if not items:
            return gr.skip(), gr.skip()
        return script_of(items if isinstance(items, str) else items[0][0], picture)

    def show_selected(items, selection: gr.SelectData):
        return script_of(items[selection.index][0])

    def show_selected_from_start(items, picture, selection: gr.SelectData):
        return script_of(items[selection.index][0], picture)

    (studio.settings.data_dir / "downloads").mkdir(parents=True, exist_ok=True)
    inputs = [shown, start] if start is not None else [shown]
    run_event.success(show_first, inputs, [code, download], api_visibility="private", concurrency_limit=None)
    if not isinstance(shown, gr.Gallery):
        return
    shown.select(show_selected if start is None else show_selected_from_start, inputs, [code, download],
                 api_visibility="private", concurrency_limit=None)
