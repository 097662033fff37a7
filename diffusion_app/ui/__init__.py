"""The Gradio Blocks app: one module per tab, each calling only diffusion_app.service."""

from __future__ import annotations

import gradio as gr

from ..service.jobs.manager import JobManager
from ..service.studio import Studio
from . import (attention_maps, clip_guidance, colour_guidance, ddim, digits, forward_process, history, image_to_image,
               inpaint, models_panel, step_by_step, text2img, training, unconditional)
from .i18n import TranslatedBlocks, translate_on_load
from .model_choices import refresh_model_choices
from .remember import give_visitor_an_id, visitor_state
from .visitor import account_state

GENERATION_TABS = {  # id: (title, module); each tab's images go to the history
    "unconditional": ("Unconditional", unconditional),
    "ddim": ("DDIM step control", ddim),
    "digits": ("Digits", digits),
    "colour-guidance": ("Colour guidance", colour_guidance),
    "clip-guidance": ("CLIP guidance", clip_guidance),
    "text2img": ("Text to image", text2img),
    "image-to-image": ("Image to image", image_to_image),
    "inpaint": ("Inpaint", inpaint),
}


def build_app(studio: Studio, jobs: JobManager | None = None) -> gr.Blocks:
    with TranslatedBlocks(title="Diffusion Studio") as app:
        gr.Markdown("# Diffusion Studio\nSample, steer and train diffusion models in the browser.")
        account = account_state(studio.settings)  # the page session's login, shared by the tabs that need one
        visitor_id = visitor_state()  # the browser's anonymous id: a public server's history is per browser
        tab_inputs = {}
        with gr.Tabs() as tabs:
            for tab_id, (title, module) in GENERATION_TABS.items():
                with gr.Tab(title, id=tab_id):
                    tab_inputs[tab_id] = module.build_tab(studio, visitor_id)
            with gr.Tab("Forward process", id="forward-process"):
                forward_process.build_tab(studio)
            with gr.Tab("Attention maps", id="attention-maps"):
                attention_maps.build_tab(studio)
            with gr.Tab("Step by step", id="step-by-step"):
                step_by_step.build_tab(studio)
            with gr.Tab("History", id="history") as history_tab:
                history.build_tab(studio, visitor_id, tabs, tab_inputs,
                                  {tab_id: title for tab_id, (title, _) in GENERATION_TABS.items()}, history_tab)
            with gr.Tab("Training", id="training"):
                training.build_tab(studio, jobs, account)
            with gr.Tab("Models", id="models") as models_tab:
                models_panel.build_tab(studio, models_tab, account)
        refresh_model_choices(app, studio, [app.load, tabs.select], account)
        translate_on_load(app)
        give_visitor_an_id(app, visitor_id)
    return app
