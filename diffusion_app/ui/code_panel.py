"""Show the code: under a tab's results, the diffusers script that makes the image shown (the gallery's first
after a run, or the one clicked), to copy or download and run in a notebook of one's own."""

from __future__ import annotations

import tempfile

import gradio as gr

from ..core.metadata import read_parameters
from ..service.generation.show_code import image_script
from ..service.studio import Studio
from .i18n import error

SCRIPT_NAME = "make_image.py"


def code_panel(studio: Studio, run_event, gallery: gr.Gallery, tab_title: str) -> None:
    """An accordion with the script of the gallery's image, filled when the run ends and when an image is
    clicked. The gallery needs type="filepath"."""
    with gr.Accordion("Show the code", open=False):
        code = gr.Code(language="python", interactive=False, label=SCRIPT_NAME)
        download = gr.DownloadButton(f"Download {SCRIPT_NAME}", visible=False, size="sm")

    def script_of(path: str):
        text = read_parameters(path)
        if not text:
            raise error("This image carries no generation parameters, so there is no code to show for it.")
        try:
            script = image_script(studio.catalog, text, studio.settings.dtype, tab_title)
        except (ValueError, KeyError) as err:
            raise error(str(err)) from err
        folder = tempfile.mkdtemp(dir=studio.settings.data_dir / "downloads")  # one per call: visitors never share
        with open(f"{folder}/{SCRIPT_NAME}", "w") as file:
            file.write(script)
        return script, gr.DownloadButton(value=file.name, visible=True)

    def show_first(items):
        if not items:
            return gr.skip(), gr.skip()
        return script_of(items[0][0])

    def show_selected(items, selection: gr.SelectData):
        return script_of(items[selection.index][0])

    (studio.settings.data_dir / "downloads").mkdir(parents=True, exist_ok=True)
    run_event.success(show_first, gallery, [code, download], api_visibility="private", concurrency_limit=None)
    gallery.select(show_selected, gallery, [code, download], api_visibility="private", concurrency_limit=None)
