"""The Gradio Blocks app: one module per tab, each calling only diffusion_app.service."""

from __future__ import annotations

import gradio as gr

from ..service.jobs import JobManager
from ..service.studio import Studio
from . import (clip_guidance, colour_guidance, ddim, digits, forward_process, image_to_image, models_panel, text2img,
               training, unconditional)
from .model_choices import refresh_model_choices
from .visitor import account_state


def build_app(studio: Studio, jobs: JobManager | None = None) -> gr.Blocks:
    with gr.Blocks(title="Diffusion Studio") as app:
        gr.Markdown("# Diffusion Studio\nSample, steer and train diffusion models in the browser.")
        account = account_state(studio.settings)  # the page session's login, shared by the tabs that need one
        with gr.Tabs() as tabs:
            with gr.Tab("Unconditional", id="unconditional"):
                unconditional.build_tab(studio)
            with gr.Tab("DDIM step control", id="ddim"):
                ddim.build_tab(studio)
            with gr.Tab("Digits", id="digits"):
                digits.build_tab(studio)
            with gr.Tab("Colour guidance", id="colour-guidance"):
                colour_guidance.build_tab(studio)
            with gr.Tab("CLIP guidance", id="clip-guidance"):
                clip_guidance.build_tab(studio)
            with gr.Tab("Text to image", id="text2img"):
                text2img.build_tab(studio)
            with gr.Tab("Image to image", id="image-to-image"):
                image_to_image.build_tab(studio)
            with gr.Tab("Forward process", id="forward-process"):
                forward_process.build_tab(studio)
            with gr.Tab("Training", id="training"):
                training.build_tab(studio, jobs, account)
            with gr.Tab("Models", id="models") as models_tab:
                models_panel.build_tab(studio, models_tab, account)
        refresh_model_choices(app, studio, [app.load, tabs.select])
    return app
