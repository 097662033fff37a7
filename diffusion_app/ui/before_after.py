"""A before/after slider for two images that belong together (the picture a run started from and what it made,
unguided and guided from the same seed): dragging across one image compares them better than eyes moving
between two galleries."""

from __future__ import annotations

import gradio as gr


def before_after_slider(label: str) -> gr.ImageSlider:
    return gr.ImageSlider(label=label, type="filepath", format="png", interactive=False, elem_classes="pixelated",
                          max_height=320)


def first_image(value):
    """The first image of a gallery's value ((image, caption) pairs), or an image component's value itself."""
    if isinstance(value, (list, tuple)):
        return value[0][0] if value else None
    return value


def show_before_after(run_event, before: gr.components.Component, after: gr.Gallery, slider: gr.ImageSlider) -> None:
    """After each run, the slider compares `before`'s image with `after`'s first one."""

    def pair(before_value, after_value):
        first, second = first_image(before_value), first_image(after_value)
        return (first, second) if first is not None and second is not None else gr.skip()

    run_event.then(pair, [before, after], slider, api_visibility="private", show_progress="hidden")
