"""Tab 6: train a model on an uploaded folder or .zip, in the background; watch, cancel, resume, delete jobs.

When DS_TRAINING_AUTH is set, the tab asks for a user name and password first. Gradio's own auth
covers a whole app, so this tab keeps its own login per browser session: until it succeeds the
tab's controls stay hidden and every training endpoint, the API included, refuses to act.
"""

from __future__ import annotations

import functools
import hmac
import html
import logging
import time

import gradio as gr
import pandas as pd

from ..catalog import CLASS_CONDITIONAL, UNCONDITIONAL
from ..hardware import mixed_precision_help
from ..service.job_options import MAX_RESOLUTION, MIN_RESOLUTION, MODEL_SIZES, JobOptions, presets
from ..service.jobs import FINISHED, FAILED, QUEUED, RUNNING, JobManager
from ..service.studio import Studio
from ..training.config import MIXED_PRECISION
from ..training.dataset_report import DatasetReport, preview_grid
from .common import model_dropdown, number, reports_errors, whole_number

logger = logging.getLogger(__name__)

REFRESH_SECONDS = 2.0
FROM_SCRATCH, FINE_TUNE = "From scratch", "Fine-tune a model"
STEPS, EPOCHS = "steps", "epochs"
SKIPPED_LISTED = 20
SIDE_BUCKETS = (16, 32, 64, 128, 256)
TABLE_HEADERS = ["Job", "Name", "Status", "Step", "Progress", "ETA", "Images/s", "Created"]
KIND_TABS = {UNCONDITIONAL: "Unconditional and DDIM step control", CLASS_CONDITIONAL: "Digits"}


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


def build_tab(studio: Studio, jobs: JobManager | None) -> None:
    if jobs is None:
        gr.Markdown("Training is switched off on this server (`DS_TRAINING_ENABLED=0`).")
        return
    credentials = studio.settings.training_auth
    presets_here = presets(studio.settings.device)
    signed_in = gr.State(not credentials)
    upload_id = gr.State(None)
    listed = gr.State(None)  # the job choices this page shows
    panel_key = gr.State(None)  # what the job panel shows, to send plots and images only when they change

    with gr.Column(visible=bool(credentials)) as login_box:
        gr.Markdown("Training on this server needs a login.")
        with gr.Row():
            username = gr.Textbox(label="User name")
            password = gr.Textbox(label="Password", type="password")
        login = gr.Button("Log in")

    with gr.Column(visible=not credentials) as main:
        gr.Markdown("### 1. Dataset")
        with gr.Row():
            with gr.Column(scale=1):
                folder = gr.File(label="Image folder", file_count="directory")
                archive = gr.File(label="…or a .zip", file_types=[".zip"])
                gr.Markdown("Images directly in the folder train an unconditional model; one subfolder per class "
                            "(`cat/*.png`, `dog/*.png`) a class-conditional one. Browsers send a folder's files "
                            "without their subfolders, so upload classes as a .zip.")
            with gr.Column(scale=2):
                report = gr.Markdown("No dataset yet.")
                preview = gr.Image(label="Preview", type="pil", format="png", interactive=False,
                                   elem_classes="pixelated")

        gr.Markdown("### 2. Training")
        defaults = presets_here["Quick test"]
        with gr.Row():
            preset = gr.Radio(list(presets_here), value="Quick test", label="Preset",
                              info="Quick test: a few minutes on a CPU, to check the set-up. Standard: a real run.")
            name = gr.Textbox(label="Job name", info="Also the model's name in the other tabs (renameable).")
        with gr.Row():
            start_from = gr.Radio([FROM_SCRATCH, FINE_TUNE], value=FROM_SCRATCH, label="Start")
            base_model = model_dropdown(studio, UNCONDITIONAL, label="Model to fine-tune",
                                        info="Fine-tuning keeps the model's resolution and channels.")
            model_size = gr.Radio(list(MODEL_SIZES), value=defaults.model_size, label="Model size (from scratch)")
        with gr.Row():
            resolution = gr.Slider(MIN_RESOLUTION, MAX_RESOLUTION, value=defaults.resolution, step=4,
                                   label="Resolution", info="Images are cropped to squares of this size.")
            grayscale = gr.Checkbox(value=False, label="Grayscale")
            class_conditional = gr.Checkbox(value=False, label="Class-conditional",
                                            info="One class per subfolder; the model joins the Digits tab.")
        with gr.Row():
            length_unit = gr.Radio([STEPS, EPOCHS], value=STEPS, label="Train for")
            length = gr.Number(value=defaults.steps, precision=0, minimum=1, label="Steps or epochs")
            batch_size = gr.Number(value=defaults.batch_size, precision=0, minimum=1, label="Batch size")
            learning_rate = gr.Number(value=defaults.learning_rate, label="Learning rate")
        with gr.Row():
            mixed_precision = gr.Radio(list(MIXED_PRECISION), value=defaults.mixed_precision, label="Mixed precision",
                                       info=mixed_precision_help(studio.settings.device))
            use_ema = gr.Checkbox(value=defaults.use_ema, label="EMA weights")
            sample_every = gr.Number(value=defaults.sample_every, precision=0, minimum=0,
                                     label="Sample grid every N steps", info="0: only at the end")
            sample_steps = gr.Number(value=defaults.sample_steps, precision=0, minimum=1,
                                     label="Sample grid DDIM steps")
            checkpoint_every = gr.Number(value=defaults.checkpoint_every, precision=0, minimum=1,
                                         label="Checkpoint every N steps")
        start = gr.Button("Start training", variant="primary")
        start_report = gr.Markdown()

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

    def log_in(user, secret):
        if not any(hmac.compare_digest((user or "").encode(), known_user.encode())
                   & hmac.compare_digest((secret or "").encode(), known_secret.encode())
                   for known_user, known_secret in credentials):
            raise gr.Error("Wrong user name or password.")
        return True, gr.Column(visible=False), gr.Column(visible=True), ""

    @reports_errors
    def inspect(allowed, files, size):
        yield None, "Checking the upload…", None, gr.skip(), gr.skip(), gr.skip()  # forget the previous upload
        require_login(allowed)
        size = whole_number(size, "Resolution")
        try:
            new_id, dataset = jobs.uploads.inspect(files if isinstance(files, list) else [files] if files else [])
        except ValueError as err:
            yield None, f"**Upload refused.** {escape(str(err))}", None, gr.skip(), gr.skip(), gr.skip()
            raise
        yield (new_id, report_markdown(dataset, size), preview_grid(jobs.uploads.folder / new_id, dataset, size),
               free_job_name(jobs, dataset.source), gr.Checkbox(value=bool(dataset.class_names)),
               gr.Checkbox(value=dataset.grayscale))

    @shows_errors
    def rereport(allowed, current_upload, size):
        if not allowed or not current_upload:
            return gr.skip(), gr.skip()
        folder_path, dataset = jobs.uploads.get(current_upload)
        size = whole_number(size, "Resolution")
        return report_markdown(dataset, size), preview_grid(folder_path, dataset, size)

    def apply_preset(preset_name):
        options = presets_here[preset_name]
        return (options.model_size, options.resolution, STEPS, options.steps, options.batch_size, options.learning_rate,
                options.mixed_precision, options.use_ema, options.sample_every, options.sample_steps,
                options.checkpoint_every)

    @shows_errors
    def start_job(allowed, current_upload, job_name, start_choice, base, size_name, size, gray, by_class, unit,
                  amount, batch, rate, precision, ema, every_samples, grid_steps, every_checkpoint):
        require_login(allowed)
        amount = whole_number(amount, "Steps or epochs")
        options = JobOptions(
            name=job_name, base_model=base if start_choice == FINE_TUNE else None, model_size=size_name,
            resolution=whole_number(size, "Resolution"), grayscale=bool(gray), class_conditional=bool(by_class),
            steps=amount if unit == STEPS else None, epochs=amount if unit == EPOCHS else None,
            batch_size=whole_number(batch, "Batch size"), learning_rate=number(rate, "Learning rate"),
            mixed_precision=precision, use_ema=bool(ema), sample_every=whole_number(every_samples, "Sample interval"),
            sample_steps=whole_number(grid_steps, "Sample grid steps"),
            checkpoint_every=whole_number(every_checkpoint, "Checkpoint interval"),
        )
        created = jobs.submit(current_upload, options)
        place = jobs.queue_position(created)
        return (f"Job #{created.id} **{escape(created.name)}** is queued"
                f"{f' ({ordinal(place)} in line)' if place and place > 1 else ''}; follow it below.",
                job_choices(jobs, created.id))

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

    login.click(log_in, [username, password], [signed_in, login_box, main, password], api_name="training_login")
    inspect_outputs = [upload_id, report, preview, name, class_conditional, grayscale]
    folder.upload(inspect, [signed_in, folder, resolution], inspect_outputs, api_name="inspect_dataset")
    archive.upload(inspect, [signed_in, archive, resolution], inspect_outputs, api_visibility="private")
    resolution.change(rereport, [signed_in, upload_id, resolution], [report, preview], api_visibility="private")
    preset.change(apply_preset, preset, [model_size, resolution, length_unit, length, batch_size, learning_rate,
                                         mixed_precision, use_ema, sample_every, sample_steps, checkpoint_every],
                  api_visibility="private")
    start.click(start_job, [signed_in, upload_id, name, start_from, base_model, model_size, resolution, grayscale,
                            class_conditional, length_unit, length, batch_size, learning_rate, mixed_precision,
                            use_ema, sample_every, sample_steps, checkpoint_every],
                [start_report, job], api_name="start_job")
    refresh_outputs = [table, job, listed, status, loss_plot, samples, log, panel_key]
    gr.on([timer.tick, job.change], refresh, [signed_in, job, listed, panel_key], refresh_outputs,
          api_name="refresh_jobs", show_progress="hidden", concurrency_limit=None)
    cancel.click(cancel_job, [signed_in, job], action_report, api_name="cancel_job")
    resume.click(resume_job, [signed_in, job], action_report, api_name="resume_job")
    delete.click(delete_job, [signed_in, job, confirm_delete], [action_report, confirm_delete], api_name="delete_job")
    rename.click(rename_job, [signed_in, job, new_name], [action_report, job], api_name="rename_job")
    push.click(push_job, [signed_in, job, repo_id, token], [action_report, token], api_name="push_job")


def require_job(selected) -> int:
    if selected is None:
        raise ValueError("Choose a job first.")
    return whole_number(selected, "Job")


def job_choices(jobs: JobManager, selected: int) -> gr.Dropdown:
    return gr.Dropdown(choices=[(f"#{j.id} {j.name}", j.id) for j in reversed(jobs.jobs())], value=selected)


def free_job_name(jobs: JobManager, source: str) -> str:
    taken = {job.name for job in jobs.jobs()} | set(jobs.studio.catalog.names())
    name, suffix = source, 2
    while name in taken:
        name, suffix = f"{source}-{suffix}", suffix + 1
    return name


def report_markdown(dataset: DatasetReport, resolution: int) -> str:
    usable = dataset.usable(resolution)
    lines = [f"**{len(dataset.accepted)} image(s) accepted**, {len(dataset.skipped)} file(s) skipped."]
    if dataset.class_names:
        counts = dataset.class_counts(resolution)
        lines.append(f"{len(counts)} classes: " + ", ".join(f"{escape(n)} ({c})" for n, c in counts.items()))
    else:
        lines.append("No class subfolders: an unconditional dataset.")
    too_small = len(dataset.accepted) - len(usable)
    lines.append(f"At {resolution}x{resolution}: **{len(usable)} usable**"
                 + (f"; {too_small} smaller than {resolution} px on their shorter side are left out "
                    "(lower the resolution to keep them)." if too_small else "."))
    sizes = dataset.size_summary()
    lines.append("Sizes: " + ", ".join(f"{axis} {low}–{high} (median {median})"
                                        for axis, (low, median, high) in sizes.items()))
    lines.append("Shorter side: " + " · ".join(f"{label}: {count}" for label, count in side_histogram(dataset)))
    for note, count in dataset.notes().items():
        lines.append(f"Converted: {count} × {escape(note)}")
    if dataset.repeated_names:
        lines.append(f"{dataset.repeated_names} files share their name with another; each is kept.")
    text = "  \n".join(lines)
    if dataset.skipped:
        rows = "\n".join(f"| {escape(skip.name)} | {escape(skip.reason)} |" for skip in dataset.skipped[:SKIPPED_LISTED])
        more = len(dataset.skipped) - SKIPPED_LISTED
        text += f"\n\n| Skipped | Why |\n|---|---|\n{rows}" + (f"\n\n…and {more} more." if more > 0 else "")
    return text


def side_histogram(dataset: DatasetReport) -> list[tuple[str, int]]:
    sides = [image.shorter_side for image in dataset.accepted]
    edges = (0, *SIDE_BUCKETS, float("inf"))
    labels = [f"<{SIDE_BUCKETS[0]}"] + [f"{a}–{b - 1}" for a, b in zip(SIDE_BUCKETS, SIDE_BUCKETS[1:])] \
        + [f"≥{SIDE_BUCKETS[-1]}"]
    return [(label, sum(low <= side < high for side in sides)) for label, low, high in zip(labels, edges, edges[1:])]


def table_row(jobs: JobManager, job) -> list:
    progress = jobs.progress(job)
    state = job.status
    if state == RUNNING and job.cancel_requested:
        state = "cancelling"
    elif state == QUEUED:
        state = f"queued ({ordinal(jobs.queue_position(job))} in line)"
    total = progress.total_steps
    return [f"#{job.id}", job.name, state, f"{progress.step}/{total}" if total else "–",
            f"{progress.fraction:.0%}" if total else "–",
            duration(progress.eta_seconds) if job.status == RUNNING and progress.eta_seconds is not None else "–",
            f"{progress.images_per_s:.1f}" if progress.images_per_s else "–",
            time.strftime("%Y-%m-%d %H:%M", time.localtime(job.created))]


def status_html(jobs: JobManager, job) -> str:
    progress = jobs.progress(job)
    total = progress.total_steps
    parts = [f"<b>#{job.id} {html.escape(job.name)}</b>: {html.escape(job.status)}"]
    if total:
        parts.append(f"step {progress.step}/{total} ({progress.fraction:.0%})")
    if job.status == RUNNING and progress.eta_seconds is not None:
        parts.append(f"ETA {duration(progress.eta_seconds)}")
    if progress.images_per_s:
        parts.append(f"{progress.images_per_s:.1f} images/s")
    lines = [" · ".join(parts)]
    if total:
        lines.append(f'<progress value="{progress.step}" max="{total}" style="width:100%"></progress>')
    dataset = job.dataset
    classes = f", classes {html.escape(', '.join(dataset['classes']))}" if dataset.get("classes") else ""
    lines.append(f"{dataset['images']} images from {html.escape(dataset['source'])}{classes}; "
                 f"{job.config['resolution']}x{job.config['resolution']}"
                 + (f", fine-tuning {html.escape(job.config['pretrained_model'])}" if job.config["pretrained_model"]
                    else ""))
    if job.message:
        lines.append(html.escape(job.message))
    if job.status == FINISHED:
        kind = CLASS_CONDITIONAL if dataset.get("classes") else UNCONDITIONAL
        lines.append(f"The model <b>{html.escape(job.name)}</b> is in the {KIND_TABS[kind]} tabs' model lists.")
    return "<br>".join(lines)


def duration(seconds: float) -> str:
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    minutes = seconds // 60
    return f"{minutes} min" if minutes < 60 else f"{minutes // 60} h {minutes % 60:02d} min"


def ordinal(place: int) -> str:
    suffix = "th" if 10 <= place % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(place % 10, "th")
    return f"{place}{suffix}"


def escape(text: str) -> str:
    """Markdown-safe text: user-given names may hold |, *, _, [ or backticks."""
    return "".join(f"\\{c}" if c in "\\`*_{}[]()#+-.!|<>" else c for c in text)
