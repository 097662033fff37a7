"""Tab: the history. Every image the generation tabs made, newest first, with filters; one opened shows its
parameters and can be downloaded, deleted, or sent back to its tab, whose controls then hold the inputs that
made it (with its run's seed), so that Generate makes it again, pixel for pixel. On a public server each
visitor's browser sees its own images only."""

from __future__ import annotations

import datetime

import gradio as gr

from ..core.metadata import parse_parameters
from ..service.studio import Studio
from .common import reports_errors
from .i18n import english, tr
from .outputs import output_gallery

ALL = "All tabs"
LISTED = 120
WHAT_IT_KEEPS = ("Keeps the final images of every run on the tabs listed under Tab, with the inputs that made "
                 "them: the guided images of the guidance tabs (their unguided ones are that model's plain samples "
                 "from the same seed) and the results of Image to image and Inpaint. Forward process is not kept: "
                 "it noises your own picture, and its tab redraws it at once.")


def build_tab(studio: Studio, visitor_id: gr.BrowserState, tabs: gr.Tabs, tab_inputs: dict[str, list],
              tab_names: dict[str, str], tab: gr.Tab) -> None:
    history = studio.history
    listed = gr.State([])  # the ids the gallery shows, in order
    selected = gr.Textbox(visible=False, label="Image id")  # a textbox, not a state: API callers give an id
    gr.Markdown(WHAT_IT_KEEPS)
    with gr.Row():
        which_tab = gr.Dropdown([ALL, *[(tab_names[key], key) for key in tab_inputs]], value=ALL, label="Tab")
        model = gr.Textbox(label="Model", placeholder="any")
        text = gr.Textbox(label="Search", placeholder="prompt, colour, seed, sampler…")
        refresh = gr.Button("Refresh", scale=0)
    gallery = output_gallery("Images, newest first", columns=8, height="auto", allow_preview=False)
    with gr.Row():
        with gr.Column(scale=2):
            details = gr.Markdown("Click an image to open it.")
        with gr.Column(scale=1):
            download = gr.File(label="Download", interactive=False)
            send = gr.Button("Send to its tab", variant="primary")
            with gr.Row():
                delete = gr.Button("Delete", variant="stop")
                confirm = gr.Checkbox(label="Yes, delete it")
    components = [component for inputs in tab_inputs.values() for component in inputs]

    def owner(visitor) -> str | None:
        if studio.settings.public and not visitor:
            raise ValueError("Your browser has no history id yet: reload the page.")
        return visitor if studio.settings.public else None

    @reports_errors
    def search(tab_key, model_name, words, visitor=None):
        """List the history's images, newest first.

        Args:
            tab_key: a tab's id (unconditional, text2img, ...) or "All tabs".
            model_name: only this model's images (empty: any).
            words: only images whose text or parameters contain this (empty: any).
            visitor: the browser's history id (public servers).
        """
        images = history.search(owner(visitor), None if tab_key == ALL else tab_key, (model_name or "").strip(),
                                (words or "").strip(), LISTED)
        yield ([(str(history.file(image.id)), f"{tr(tab_names.get(image.tab, image.tab))} · {image.model}")
                for image in images], [image.id for image in images])

    @reports_errors
    def open_image(ids, visitor, event: gr.SelectData):
        image = history.get(ids[event.index], owner(visitor))
        when = datetime.datetime.fromtimestamp(image.created).strftime("%Y-%m-%d %H:%M:%S")
        yield (image.id, f"**{tr(tab_names.get(image.tab, image.tab))}** · {image.model} · {when}\n\n```\n"
                         f"{image.parameters}\n```", str(history.file(image.id)))

    @reports_errors
    def send_to_tab(image_id, visitor=None):
        """The tab's controls as they were for the run that made the image, with that run's seed.

        Args:
            image_id: the history image's id.
            visitor: the browser's history id (public servers).
        """
        if not image_id:
            raise ValueError("Open an image first.")
        image = history.get(image_id, owner(visitor))
        values = restored_inputs(image, tab_inputs[image.tab])
        updates = [values.pop(0) if component in tab_inputs[image.tab] else gr.skip() for component in components]
        yield [gr.Tabs(selected=image.tab), *updates]

    @reports_errors
    def delete_image(image_id, confirmed, tab_key, model_name, words, visitor=None):
        if not image_id:
            raise ValueError("Open an image first.")
        if not confirmed:
            raise ValueError("Tick “Yes, delete it” to delete the image.")
        history.delete(image_id, owner(visitor))
        for listing in search(tab_key, model_name, words, visitor):
            yield (tr("Deleted."), None, False, None, *listing)

    filters = [which_tab, model, text, visitor_id]
    gr.on([refresh.click, tab.select, which_tab.change], search, filters, [gallery, listed], api_name="history_search",
          concurrency_limit=None, show_progress="hidden")
    gallery.select(open_image, [listed, visitor_id], [selected, details, download], api_visibility="private",
                   concurrency_limit=None)
    send.click(send_to_tab, [selected, visitor_id], [tabs, *components], api_name="history_send",
               concurrency_limit=None)
    delete.click(delete_image, [selected, confirm, *filters], [details, download, confirm, selected, gallery, listed],
                 api_name="history_delete", concurrency_limit=None)


def restored_inputs(image, components: list) -> list:
    """The run's inputs for its tab's controls: with the seed that made its first image, not a new random one. A run
    kept before its tab gained a control (the last inputs are the newest) leaves that control as it is."""
    values = list(image.inputs) + [gr.skip()] * (len(components) - len(image.inputs))
    seed = parse_parameters(image.parameters).get("Seed")
    for index, component in enumerate(components):
        label = english(getattr(component, "label", None))  # the page may have made it a translation key
        if label == "Seed" and seed is not None:
            values[index] = int(seed) - image.position
        elif label == "Random seed":
            values[index] = False
    return values
