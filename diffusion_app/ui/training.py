"""Tab 6: train a model on an uploaded folder, a .zip or a hub dataset, in the background; watch the jobs.

Three kinds of job: an image model (a DDPM in pixel space, unconditional or class-conditional), a text-to-
image model (a Stable Diffusion UNet fine-tuned or trained from scratch) and LoRA adapters on a Stable
Diffusion model; the text kinds need captions, or an instance prompt for the images without one.

When DS_TRAINING_AUTH is set, the tab asks for a user name and password first. Gradio's own auth
covers a whole app, so this tab keeps its own login per browser session: until it succeeds the
tab's controls stay hidden and every training endpoint, the API included, refuses to act.
"""

from __future__ import annotations

import hmac

import gradio as gr

from ..catalog import TEXT_TO_IMAGE as TEXT_TO_IMAGE_MODELS
from ..catalog import UNCONDITIONAL
from ..hardware import mixed_precision_help
from ..service.job_options import (DDPM, KINDS, LORA, MAX_LORA_RANK, MAX_RESOLUTION, MIN_RESOLUTION, MODEL_SIZES,
                                   TEXT_KINDS, TEXT_TO_IMAGE, JobOptions, presets)
from ..service.jobs import JobManager
from ..service.studio import Studio
from ..training.config import MIXED_PRECISION
from ..training.dataset_report import preview_grid
from .common import model_dropdown, number, reports_errors, whole_number
from .i18n import tr
from .training_jobs import build_jobs_panel, job_choices, shows_errors
from .training_report import escape, report_markdown
from .visitor import current_visitor

FROM_SCRATCH, FINE_TUNE = "From scratch", "Fine-tune a model"
STEPS, EPOCHS = "steps", "epochs"
KIND_LABELS = {DDPM: "Image model", TEXT_TO_IMAGE: "Text to image", LORA: "LoRA"}


def build_tab(studio: Studio, jobs: JobManager | None, account: gr.State) -> None:
    if jobs is None:
        gr.Markdown("Training is switched off on this server (`DS_TRAINING_ENABLED=0`).")
        return
    settings = studio.settings
    credentials = settings.training_auth
    presets_here = presets(settings.training_device)
    upload_id = gr.State(None)

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
        gr.Markdown("### 1. Dataset")
        with gr.Row():
            with gr.Column(scale=1):
                folder = gr.File(label="Image folder", file_count="directory")
                archive = gr.File(label="…or a .zip", file_types=[".zip"])
                gr.Markdown("Images directly in the folder train an unconditional model; one subfolder per class "
                            "(`cat/*.png`, `dog/*.png`) a class-conditional one. Captions, for text to image and "
                            "LoRA: a `metadata.jsonl` (`file_name`, `text`) or a `.txt` named like each image. "
                            "Browsers send a folder's files without their subfolders, so upload classes as a .zip.")
                with gr.Accordion("…or a dataset from the Hugging Face Hub", open=False):
                    dataset_id = gr.Textbox(label="Dataset", placeholder="huggan/smithsonian_butterflies_subset",
                                            info="A hub dataset id (downloads once) or a local dataset folder.")
                    with gr.Row():
                        split = gr.Textbox(value="train", label="Split")
                        image_column = gr.Textbox(value="image", label="Image column")
                        caption_column = gr.Textbox(label="Caption column", placeholder="text")
                        label_column = gr.Textbox(label="Label column", placeholder="label")
                    load_dataset = gr.Button("Load the dataset")
            with gr.Column(scale=2):
                report = gr.Markdown("No dataset yet.")
                preview = gr.Image(label="Preview", type="pil", format="png", interactive=False,
                                   elem_classes="pixelated")

        gr.Markdown("### 2. Training")
        defaults = presets_here["Quick test"]
        with gr.Row():
            preset = gr.Radio(list(presets_here), value="Quick test", label="Preset",
                              info="Quick tests take minutes on a CPU, to check the set-up; the others are real runs.")
            name = gr.Textbox(label="Job name", info="Also the model's name in the other tabs (renameable).")
        kind = gr.Radio([(label, value) for value, label in KIND_LABELS.items()], value=DDPM, label="What to train",
                        info=" · ".join(f"{KIND_LABELS[value]}: {text.split(': ', 1)[1]}" for value, text in KINDS.items()))
        with gr.Row() as image_model_row:
            start_from = gr.Radio([FROM_SCRATCH, FINE_TUNE], value=FROM_SCRATCH, label="Start")
            base_model = model_dropdown(studio, UNCONDITIONAL, label="Model to fine-tune",
                                        info="Fine-tuning keeps the model's resolution and channels.")
            model_size = gr.Radio(list(MODEL_SIZES), value=defaults.model_size, label="Model size (from scratch)")
        with gr.Row(visible=False) as text_row:
            text_base = model_dropdown(studio, TEXT_TO_IMAGE_MODELS, label="Stable Diffusion model",
                                       info="Its VAE and text encoder (and, unless from scratch, its UNet).")
            from_scratch = gr.Checkbox(value=False, label="New UNet from scratch (text to image)",
                                       info="Sized by the model size above; else fine-tunes the model's UNet.")
            instance_prompt = gr.Textbox(label="Instance prompt", placeholder="a photo of sks dog",
                                         info="The caption of images that have none.")
            lora_rank = gr.Slider(1, MAX_LORA_RANK, value=defaults.lora_rank, step=1, precision=0, label="LoRA rank")
            train_text_encoder = gr.Checkbox(value=False, label="LoRA on the text encoder too")
        with gr.Row():
            resolution = gr.Slider(MIN_RESOLUTION, MAX_RESOLUTION, value=defaults.resolution, step=4, precision=0,
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
                                       info=mixed_precision_help(studio.settings.training_device))
            use_ema = gr.Checkbox(value=defaults.use_ema, label="EMA weights")
            sample_every = gr.Number(value=defaults.sample_every, precision=0, minimum=0,
                                     label="Sample grid every N steps", info="0: only at the end")
            sample_steps = gr.Number(value=defaults.sample_steps, precision=0, minimum=1,
                                     label="Sample grid DDIM steps")
            checkpoint_every = gr.Number(value=defaults.checkpoint_every, precision=0, minimum=1,
                                         label="Checkpoint every N steps")
        start = gr.Button("Start training", variant="primary")
        start_report = gr.Markdown()
        job = build_jobs_panel(jobs, account)

    def log_in(user, secret):
        if not any(hmac.compare_digest((user or "").encode(), known_user.encode())
                   & hmac.compare_digest((secret or "").encode(), known_secret.encode())
                   for known_user, known_secret in credentials):
            raise gr.Error(tr("Wrong user name or password."))
        return user, gr.Column(visible=False), gr.Column(visible=True), ""

    def show_report(new_id, dataset, size):
        """The inspect handlers' outputs for a stored upload: its report, preview and the choices it suggests."""
        return (new_id, report_markdown(dataset, size), preview_grid(jobs.uploads.folder / new_id, dataset, size),
                free_job_name(jobs, dataset.source), gr.Checkbox(value=bool(dataset.class_names)),
                gr.Checkbox(value=dataset.grayscale))

    @reports_errors
    def inspect(signed_in, files, size, profile: gr.OAuthProfile | None = None):
        yield None, tr("Checking the upload…"), None, gr.skip(), gr.skip(), gr.skip()  # forget the previous upload
        visitor = current_visitor(settings, signed_in, profile)
        size = whole_number(size, "Resolution")
        try:
            new_id, dataset = jobs.uploads.inspect(files if isinstance(files, list) else [files] if files else [],
                                                   visitor=visitor)
        except ValueError as err:
            yield None, f"**{tr('Upload refused.')}** {escape(tr(str(err)))}", None, gr.skip(), gr.skip(), gr.skip()
            raise
        yield show_report(new_id, dataset, size)

    @reports_errors
    def inspect_hub(signed_in, dataset_name, split_name, images_from, captions_from, labels_from, size,
                    profile: gr.OAuthProfile | None = None):
        yield None, tr("Loading the dataset…"), None, gr.skip(), gr.skip(), gr.skip()
        visitor = current_visitor(settings, signed_in, profile)
        size = whole_number(size, "Resolution")
        try:
            new_id, dataset = jobs.uploads.inspect_dataset(dataset_name, split_name, images_from, captions_from,
                                                           labels_from, visitor=visitor)
        except ValueError as err:
            yield None, f"**{tr('Dataset refused.')}** {escape(tr(str(err)))}", None, gr.skip(), gr.skip(), gr.skip()
            raise
        yield show_report(new_id, dataset, size)

    @shows_errors
    def rereport(signed_in, current_upload, size):
        if signed_in is None or not current_upload:
            return gr.skip(), gr.skip()
        folder_path, dataset = jobs.uploads.get(current_upload)
        size = whole_number(size, "Resolution")
        return report_markdown(dataset, size), preview_grid(folder_path, dataset, size)

    def apply_preset(preset_name):
        options = presets_here[preset_name]
        return (options.model_size, options.resolution, STEPS, options.steps, options.batch_size, options.learning_rate,
                options.mixed_precision, options.use_ema, options.sample_every, options.sample_steps,
                options.checkpoint_every, options.kind, options.from_scratch, options.lora_rank)

    def show_kind(chosen):
        return gr.Row(visible=chosen == DDPM), gr.Row(visible=chosen in TEXT_KINDS)

    @shows_errors
    def start_job(signed_in, current_upload, job_name, start_choice, base, size_name, size, gray, by_class, unit,
                  amount, batch, rate, precision, ema, every_samples, grid_steps, every_checkpoint, job_kind=DDPM,
                  text_model=None, new_unet=False, prompt=None, rank=8, text_encoder_too=False,
                  profile: gr.OAuthProfile | None = None):
        visitor = current_visitor(settings, signed_in, profile)
        amount = whole_number(amount, "Steps or epochs")
        text_kind = job_kind in TEXT_KINDS
        options = JobOptions(
            name=job_name, kind=job_kind,
            base_model=text_model if text_kind else base if start_choice == FINE_TUNE else None,
            from_scratch=bool(new_unet) and job_kind == TEXT_TO_IMAGE, model_size=size_name,
            resolution=whole_number(size, "Resolution"), grayscale=bool(gray), class_conditional=bool(by_class),
            steps=amount if unit == STEPS else None, epochs=amount if unit == EPOCHS else None,
            batch_size=whole_number(batch, "Batch size"), learning_rate=number(rate, "Learning rate"),
            mixed_precision=precision, use_ema=bool(ema), sample_every=whole_number(every_samples, "Sample interval"),
            sample_steps=whole_number(grid_steps, "Sample grid steps"),
            checkpoint_every=whole_number(every_checkpoint, "Checkpoint interval"),
            instance_prompt=prompt or None, lora_rank=whole_number(rank, "LoRA rank"),
            train_text_encoder=bool(text_encoder_too),
        )
        created = jobs.submit(current_upload, options, visitor)
        place = jobs.queue_position(created)
        job_name = escape(created.name)
        queued = (f"Job #{created.id} **{job_name}** is queued (number {place} in line); follow it below."
                  if place and place > 1 else f"Job #{created.id} **{job_name}** is queued; follow it below.")
        return (tr(queued),
                job_choices(jobs, created.id, visitor))

    login.click(log_in, [username, password], [account, login_box, main, password], api_name="training_login",
                show_progress="hidden")
    inspect_outputs = [upload_id, report, preview, name, class_conditional, grayscale]
    folder.upload(inspect, [account, folder, resolution], inspect_outputs, api_name="inspect_dataset")
    archive.upload(inspect, [account, archive, resolution], inspect_outputs, api_visibility="private")
    load_dataset.click(inspect_hub, [account, dataset_id, split, image_column, caption_column, label_column,
                                     resolution], inspect_outputs, api_name="inspect_hub_dataset")
    resolution.change(rereport, [account, upload_id, resolution], [report, preview], api_visibility="private")
    preset.change(apply_preset, preset, [model_size, resolution, length_unit, length, batch_size, learning_rate,
                                         mixed_precision, use_ema, sample_every, sample_steps, checkpoint_every, kind,
                                         from_scratch, lora_rank], api_visibility="private")
    kind.change(show_kind, kind, [image_model_row, text_row], api_visibility="private")
    # The text-to-image and LoRA choices come last, so that API calls written before they existed still work.
    start.click(start_job, [account, upload_id, name, start_from, base_model, model_size, resolution, grayscale,
                            class_conditional, length_unit, length, batch_size, learning_rate, mixed_precision,
                            use_ema, sample_every, sample_steps, checkpoint_every, kind, text_base, from_scratch,
                            instance_prompt, lora_rank, train_text_encoder],
                [start_report, job], api_name="start_job")


def free_job_name(jobs: JobManager, source: str) -> str:
    taken = {job.name for job in jobs.jobs()} | set(jobs.studio.catalog.names())
    name, suffix = source, 2
    while name in taken:
        name, suffix = f"{source}-{suffix}", suffix + 1
    return name
