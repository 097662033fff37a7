"""The Training tab's jobs panel: every job with its progress, the chosen job's loss plot and samples, and
the buttons that cancel, resume, delete, rename and push it."""

from __future__ import annotations

import functools

import gradio as gr
import pandas as pd

from ..service.jobs import FAILED, RUNNING, JobManager
from .common import whole_number
from .training_report import TABLE_HEADERS, escape, status_html, table_row

REFRESH_SECONDS = 2.0


def shows_errors(handler):
    """A ValueError from the service becomes a message for the user who clicked, never a stack trace."""

    @functools.wraps(handler)
    def wrapper(*args, **kwargs):
        try:
            return handler(*args, **kwargs)
        except ValueError as err:
            raise gr.Error(str(err)) from err

    return wrapper


def require_login(signed_in: bool) -> None:
    if not signed_in:
        raise ValueError("Log in to use training.")


def require_job(selected) -> int:
    if selected is None:
        raise ValueError("Choose a job first.")
    return whole_number(selected, "Job")


def job_choices(jobs: JobManager, selected: int) -> gr.Dropdown:
    return gr.Dropdown(choices=[(f"#{j.id} {j.name}", j.id) for j in reversed(jobs.jobs())], value=selected)


def build_jobs_panel(jobs: JobManager, signed_in: gr.State) -> gr.Dropdown:
    """The panel's widgets and events; returns the job chooser, which submitting a job updates."""
    listed = gr.State(None)  # the job choices this page shows
    panel_key = gr.State(None)  # what the job panel shows, to send plots and images only when they change
    gr.Markdown("### 3. Jobs")
    table = gr.Dataframe(headers=TABLE_HEADERS, interactive=False, wrap=True)
    job = gr.Dropdown(label="Job", choices=[], value=None)
    status = gr.HTML()
    with gr.Row():
        loss_plot = gr.LinePlot(x="step", y="loss", label="Loss", height=260)
        samples = gr.Image(label="Latest samples", type="filepath", interactive=False, height=260,
                           elem_classes="pixelated")
    log = gr.Textbox(label="Log (last lines)", lines=8, max_lines=20, interactive=False, visible=False)
    with gr.Row():
        cancel = gr.Button("Cancel", variant="stop")
        resume = gr.Button("Resume")
        delete = gr.Button("Delete")
        confirm_delete = gr.Checkbox(label="Yes, delete the job and its files")
    with gr.Row():
        new_name = gr.Textbox(label="New name", scale=3)
        rename = gr.Button("Rename", scale=1)
    with gr.Accordion("Push the finished model to the Hugging Face Hub", open=False):
        with gr.Row():
            repo_id = gr.Textbox(label="Repository", placeholder="user/model-name")
            token = gr.Textbox(label="Access token (write)", type="password",
                               info="Used for this upload only; never stored or logged.")
        push = gr.Button("Push")
    action_report = gr.Markdown()
    timer = gr.Timer(REFRESH_SECONDS)

    def refresh(allowed, selected, shown_choices, last_key):
        if not allowed:
            return (gr.skip(),) * 8
        listed_jobs = jobs.jobs()
        if selected not in [listed_job.id for listed_job in listed_jobs]:
            selected = listed_jobs[-1].id if listed_jobs else None
        table_value = pd.DataFrame([table_row(jobs, j) for j in reversed(listed_jobs)], columns=TABLE_HEADERS)
        choices = [(f"#{j.id} {j.name}", j.id) for j in reversed(listed_jobs)]
        job_update = gr.skip() if choices == shown_choices else gr.Dropdown(choices=choices, value=selected)
        if selected is None:
            return table_value, job_update, choices, "No jobs yet.", None, None, gr.Textbox(visible=False), None
        current = jobs.job(selected)
        progress = jobs.progress(current)
        key = [current.id, current.name, current.status, progress.step, str(progress.samples), current.message]
        if key == last_key:
            return (table_value, job_update, choices, status_html(jobs, current), gr.skip(), gr.skip(), gr.skip(),
                    key)
        failed = current.status == FAILED
        return (table_value, job_update, choices, status_html(jobs, current),
                pd.DataFrame(progress.losses, columns=["step", "loss"]),
                str(progress.samples) if progress.samples else None,
                gr.Textbox(value=jobs.log_tail(current) if failed else "", visible=failed), key)

    @shows_errors
    def cancel_job(allowed, selected):
        require_login(allowed)
        cancelled = jobs.cancel(require_job(selected))
        if cancelled.status == RUNNING:
            return f"Stopping job #{cancelled.id}: it saves a checkpoint at the end of its current step."
        return f"Job #{cancelled.id} is cancelled."

    @shows_errors
    def resume_job(allowed, selected):
        require_login(allowed)
        resumed = jobs.resume(require_job(selected))
        step = jobs.checkpoint_step(resumed)
        return (f"Job #{resumed.id} is queued again; it continues from step {step}." if step else
                f"Job #{resumed.id} is queued again; it has no checkpoint, so it starts from the beginning.")

    @shows_errors
    def delete_job(allowed, selected, confirmed):
        require_login(allowed)
        job_id = require_job(selected)
        if not confirmed:
            raise ValueError(f"Tick “Yes, delete the job and its files” to delete job #{job_id}.")
        jobs.delete(job_id)
        return f"Job #{job_id} and its files are deleted.", False

    @shows_errors
    def rename_job(allowed, selected, wanted):
        require_login(allowed)
        renamed = jobs.rename(require_job(selected), wanted)
        return f"Job #{renamed.id} is now **{escape(renamed.name)}**.", job_choices(jobs, renamed.id)

    @shows_errors
    def push_job(allowed, selected, repository, secret):
        require_login(allowed)
        url = jobs.push_to_hub(require_job(selected), repository, secret)
        return f"Pushed to [{url}]({url}).", ""

    refresh_outputs = [table, job, listed, status, loss_plot, samples, log, panel_key]
    gr.on([timer.tick, job.change], refresh, [signed_in, job, listed, panel_key], refresh_outputs,
          api_name="refresh_jobs", show_progress="hidden", concurrency_limit=None)
    cancel.click(cancel_job, [signed_in, job], action_report, api_name="cancel_job")
    resume.click(resume_job, [signed_in, job], action_report, api_name="resume_job")
    delete.click(delete_job, [signed_in, job, confirm_delete], [action_report, confirm_delete], api_name="delete_job")
    rename.click(rename_job, [signed_in, job, new_name], [action_report, job], api_name="rename_job")
    push.click(push_job, [signed_in, job, repo_id, token], [action_report, token], api_name="push_job")
    return job
