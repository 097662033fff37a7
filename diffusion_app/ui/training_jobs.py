"""The Training tab's jobs panel: every job with its progress, the chosen job's loss plot and samples, and
the buttons that cancel, resume, delete, rename and push it."""

from __future__ import annotations

import functools

import gradio as gr
import pandas as pd

from ..service.jobs.manager import FAILED, RUNNING, JobManager
from ..service.visitors import Visitor
from .common import whole_number
from .i18n import error, tr
from .training_report import TABLE_HEADERS, escape, status_html, table_row
from .visitor import current_visitor

REFRESH_SECONDS = 2.0


def shows_errors(handler):
    """A ValueError from the service becomes a message for the user who clicked, never a stack trace."""

    @functools.wraps(handler)
    def wrapper(*args, **kwargs):
        try:
            return handler(*args, **kwargs)
        except ValueError as err:
            raise error(str(err)) from err

    return wrapper


def require_job(selected) -> int:
    if selected is None:
        raise ValueError("Choose a job first.")
    return whole_number(selected, "Job")


def loss_frame(losses) -> pd.DataFrame:
    """The loss curve with numeric columns even while it is empty: the chart takes its axes' types from the
    first frame it is sent, and an empty frame's object columns would make every later loss a category."""
    return pd.DataFrame(losses, columns=["step", "loss"]).astype({"step": "int64", "loss": "float64"})


def job_choices(jobs: JobManager, selected: int, visitor: Visitor | None) -> gr.Dropdown:
    return gr.Dropdown(choices=[(f"#{j.id} {j.name}", j.id) for j in reversed(jobs.jobs(visitor))], value=selected)


def build_jobs_panel(jobs: JobManager, account: gr.State) -> gr.Dropdown:
    """The panel's widgets and events; returns the job chooser, which submitting a job updates. On a public
    server each visitor sees and manages their own jobs only, and pushes with their own Hugging Face login."""
    settings = jobs.settings
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
            token = gr.Textbox(label="Access token (write)", type="password", visible=not settings.public,
                               info="Used for this upload only; never stored or logged.")
        if settings.public:
            gr.Markdown("Pushes go to your own account with your Hugging Face login (sign in above).")
        push = gr.Button("Push")
    action_report = gr.Markdown()
    timer = gr.Timer(REFRESH_SECONDS)

    def refresh(signed_in, selected, shown_choices, last_key, profile: gr.OAuthProfile | None = None):
        try:
            visitor = current_visitor(settings, signed_in, profile)
        except ValueError:
            return (gr.skip(),) * 8
        listed_jobs = jobs.jobs(visitor)
        table_value = pd.DataFrame([table_row(jobs, j) for j in reversed(listed_jobs)],
                                   columns=[tr(header) for header in TABLE_HEADERS])
        choices = [(f"#{j.id} {j.name}", j.id) for j in reversed(listed_jobs)]
        if selected not in [listed_job.id for listed_job in listed_jobs]:
            selected = listed_jobs[-1].id if listed_jobs else None
            job_update = gr.Dropdown(choices=choices, value=selected)
        elif choices != shown_choices:
            # The choices only, not the value: a job started while this tick ran has selected itself meanwhile,
            # and the value this tick read would select the job before it again.
            job_update = gr.Dropdown(choices=choices)
        else:
            job_update = gr.skip()
        if selected is None:
            return table_value, job_update, choices, tr("No jobs yet."), None, None, gr.Textbox(visible=False), None
        current = jobs.job(selected, visitor)
        progress = jobs.progress(current)
        key = [current.id, current.name, current.status, progress.step, str(progress.samples), current.message]
        if key == last_key:
            return (table_value, job_update, choices, status_html(jobs, current), gr.skip(), gr.skip(), gr.skip(),
                    key)
        failed = current.status == FAILED
        return (table_value, job_update, choices, status_html(jobs, current),
                loss_frame(progress.losses),
                str(progress.samples) if progress.samples else None,
                gr.Textbox(value=jobs.log_tail(current) if failed else "", visible=failed), key)

    @shows_errors
    def cancel_job(signed_in, selected, profile: gr.OAuthProfile | None = None):
        cancelled = jobs.cancel(require_job(selected), current_visitor(settings, signed_in, profile))
        if cancelled.status == RUNNING:
            return tr(f"Stopping job #{cancelled.id}: it saves a checkpoint at the end of its current step.")
        return tr(f"Job #{cancelled.id} is cancelled.")

    @shows_errors
    def resume_job(signed_in, selected, profile: gr.OAuthProfile | None = None):
        resumed = jobs.resume(require_job(selected), current_visitor(settings, signed_in, profile))
        step = jobs.checkpoint_step(resumed)
        return tr(f"Job #{resumed.id} is queued again; it continues from step {step}." if step else
                  f"Job #{resumed.id} is queued again; it has no checkpoint, so it starts from the beginning.")

    @shows_errors
    def delete_job(signed_in, selected, confirmed, profile: gr.OAuthProfile | None = None):
        visitor = current_visitor(settings, signed_in, profile)
        job_id = require_job(selected)
        if not confirmed:
            raise ValueError(f"Tick “Yes, delete the job and its files” to delete job #{job_id}.")
        jobs.delete(job_id, visitor)
        return tr(f"Job #{job_id} and its files are deleted."), False

    @shows_errors
    def rename_job(signed_in, selected, wanted, profile: gr.OAuthProfile | None = None):
        visitor = current_visitor(settings, signed_in, profile)
        renamed = jobs.rename(require_job(selected), wanted, visitor)
        return tr(f"Job #{renamed.id} is now **{escape(renamed.name)}**."), job_choices(jobs, renamed.id, visitor)

    @shows_errors
    def push_job(signed_in, selected, repository, secret, profile: gr.OAuthProfile | None = None,
                 oauth_token: gr.OAuthToken | None = None):
        visitor = current_visitor(settings, signed_in, profile)
        if settings.public:  # the visitor's own login, never a typed token on a public server
            secret = oauth_token.token if oauth_token is not None else ""
        url = jobs.push_to_hub(require_job(selected), repository, secret, visitor)
        return tr(f"Pushed to [{url}]({url})."), ""

    refresh_outputs = [table, job, listed, status, loss_plot, samples, log, panel_key]
    gr.on([timer.tick, job.change], refresh, [account, job, listed, panel_key], refresh_outputs,
          api_name="refresh_jobs", show_progress="hidden", concurrency_limit=None)
    cancel.click(cancel_job, [account, job], action_report, api_name="cancel_job")
    resume.click(resume_job, [account, job], action_report, api_name="resume_job")
    delete.click(delete_job, [account, job, confirm_delete], [action_report, confirm_delete], api_name="delete_job")
    rename.click(rename_job, [account, job, new_name], [action_report, job], api_name="rename_job")
    push.click(push_job, [account, job, repo_id, token], [action_report, token], api_name="push_job")
    return job
