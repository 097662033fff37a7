"""Tab 6: train a model on an uploaded folder, a .zip or a hub dataset, in the background; watch the jobs.

Three kinds of job: an image model (a DDPM in pixel space, unconditional or class-conditional), a text-to-
image model (a Stable Diffusion UNet fine-tuned or trained from scratch) and LoRA adapters on a Stable
Diffusion model; the text kinds need captions, or an instance prompt for the images without one.

When DS_TRAINING_AUTH is set, the tab asks for a user name and password first. Gradio's own auth
covers a whole app, so this tab keeps its own login per browser session: until it succeeds the
tab's controls stay hidden and every training endpoint, the API included, refuses to act.

The page's sections live beside this file: training_dataset.py (the upload and its report), training_options.py
(what to train, and Start) and training_jobs.py (the jobs panel).
"""

from __future__ import annotations

import hmac

import gradio as gr

from ..service.jobs.manager import JobManager
from ..service.studio import Studio
from .i18n import error
from .training_dataset import dataset_inputs, wire_dataset
from .training_jobs import build_jobs_panel
from .training_options import options_inputs, wire_options


def build_tab(studio: Studio, jobs: JobManager | None, account: gr.State) -> None:
    if jobs is None:
        gr.Markdown("Training is switched off on this server (`DS_TRAINING_ENABLED=0`).")
        return
    settings = studio.settings
    credentials = settings.training_auth

    with gr.Column(visible=bool(credentials)) as login_box:
        gr.Markdown("Training on this server needs a login.")
        with gr.Row():
            username = gr.Textbox(label="User name")
            password = gr.Textbox(label="Password", type="password")
        login = gr.Button("Log in")

    with gr.Column(visible=not credentials) as main:
        if settings.public and not credentials and settings.space_id:
            gr.Markdown("Sign in with your Hugging Face account to train: your jobs and models are yours alone.")
            gr.LoginButton()
        elif settings.public and not credentials:  # Hugging Face sign-in exists on a Space only
            gr.Markdown("Training on this public server needs a login: its operator sets DS_TRAINING_AUTH users.")
        if settings.zerogpu:
            gr.Markdown("On this ZeroGPU Space training runs on the CPU: ZeroGPU lends its GPU to generation "
                        "requests only. The quick-test presets finish in minutes.")
        dataset = dataset_inputs()
        options = options_inputs(studio)
        job = build_jobs_panel(jobs, account)

    def log_in(user, secret):
        if not any(hmac.compare_digest((user or "").encode(), known_user.encode())
                   & hmac.compare_digest((secret or "").encode(), known_secret.encode())
                   for known_user, known_secret in credentials):
            raise error("Wrong user name or password.")
        return user, gr.Column(visible=False), gr.Column(visible=True), ""

    login.click(log_in, [username, password], [account, login_box, main, password], api_name="training_login",
                show_progress="hidden")
    wire_dataset(jobs, settings, account, dataset, options.resolution,
                 [options.name, options.class_conditional, options.grayscale])
    wire_options(jobs, settings, account, dataset.upload_id, options, job)
