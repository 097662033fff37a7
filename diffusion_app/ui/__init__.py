"""The Gradio Blocks app: one module per tab, each calling only diffusion_app.service."""

from __future__ import annotations

import gradio as gr

from ..service.studio import Studio
from . import ddim, digits, text2img, unconditional


def build_app(studio: Studio) -> gr.Blocks:
    with gr.Blocks(title="Diffusion Studio") as app:
        gr.Markdown("# Diffusion Studio\nSample, steer and train diffusion models in the browser.")
        with gr.Tabs():
            with gr.Tab("Unconditional", id="unconditional"):
                unconditional.build_tab(studio)
            with gr.Tab("DDIM step control", id="ddim"):
                ddim.build_tab(studio)
            with gr.Tab("Digits", id="digits"):
                digits.build_tab(studio)
            with gr.Tab("Text to image", id="text2img"):
                text2img.build_tab(studio)
    return app
