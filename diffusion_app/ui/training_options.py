"""The Training tab's second section: what to train and for how long, from a preset or by hand, and the
button that queues the job. The kind chosen shows the rows it needs (image model, or text to image and LoRA)."""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from ..catalog import TEXT_TO_IMAGE as TEXT_TO_IMAGE_MODELS
from ..catalog import UNCONDITIONAL
from ..hardware import mixed_precision_help
from ..service.jobs.manager import JobManager
from ..service.jobs.options import (DDPM, KINDS, LCM_LORA, LORA, MAX_LORA_RANK, MAX_RESOLUTION, MIN_RESOLUTION,
                                    MODEL_SIZES, TEXT_KINDS, TEXT_TO_IMAGE, JobOptions, presets)
from ..service.studio import Studio
from ..settings import Settings
from ..training.config import MIXED_PRECISION
from .common import model_dropdown, number, whole_number
from .i18n import tr
from .training_jobs import job_choices, shows_errors
from .training_report import escape
from .visitor import current_visitor

FROM_SCRATCH, FINE_TUNE = "From scratch", "Fine-tune a model"
STEPS, EPOCHS = "steps", "epochs"
KIND_LABELS = {DDPM: "Image model", TEXT_TO_IMAGE: "Text to image", LORA: "LoRA", LCM_LORA: "LCM distillation"}


@dataclass
class OptionsInputs:
    preset: gr.Radio
    name: gr.Textbox
    kind: gr.Radio
    image_model_row: gr.Row
    start_from: gr.Radio
    base_model: gr.Dropdown
    model_size: gr.Radio
    text_row: gr.Row
    text_base: gr.Dropdown
    from_scratch: gr.Checkbox
    instance_prompt: gr.Textbox
    lora_rank: gr.Slider
    train_text_encoder: gr.Checkbox
    resolution: gr.Slider
    grayscale: gr.Checkbox
    class_conditional: gr.Checkbox
    length_unit: gr.Radio
    length: gr.Number
    batch_size: gr.Number
    learning_rate: gr.Number
    mixed_precision: gr.Radio
    use_ema: gr.Checkbox
    sample_every: gr.Number
    sample_steps: gr.Number
    checkpoint_every: gr.Number
    start: gr.Button
    start_report: gr.Markdown


def options_inputs(studio: Studio) -> OptionsInputs:
    """The section's components, laid out where this is called, at the training device's Quick test preset."""
    presets_here = presets(studio.settings.training_device)
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
    return OptionsInputs(
        preset=preset, name=name, kind=kind, image_model_row=image_model_row, start_from=start_from,
        base_model=base_model, model_size=model_size, text_row=text_row, text_base=text_base,
        from_scratch=from_scratch, instance_prompt=instance_prompt, lora_rank=lora_rank,
        train_text_encoder=train_text_encoder, resolution=resolution, grayscale=grayscale,
        class_conditional=class_conditional, length_unit=length_unit, length=length, batch_size=batch_size,
        learning_rate=learning_rate, mixed_precision=mixed_precision, use_ema=use_ema, sample_every=sample_every,
        sample_steps=sample_steps, checkpoint_every=checkpoint_every, start=start, start_report=start_report,
    )


def wire_options(jobs: JobManager, settings: Settings, account: gr.State, upload_id: gr.State,
                 section: OptionsInputs, job) -> None:
    """Presets fill the options, the kind shows its rows, and Start queues the job for the upload in `upload_id`;
    `job` is the jobs panel's selection, which follows the new job."""
    presets_here = presets(settings.training_device)

    def apply_preset(preset_name):
        preset = presets_here[preset_name]
        return (preset.model_size, preset.resolution, STEPS, preset.steps, preset.batch_size, preset.learning_rate,
                preset.mixed_precision, preset.use_ema, preset.sample_every, preset.sample_steps,
                preset.checkpoint_every, preset.kind, preset.from_scratch, preset.lora_rank)

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

    preset_fills = [section.model_size, section.resolution, section.length_unit, section.length,
                    section.batch_size, section.learning_rate, section.mixed_precision, section.use_ema,
                    section.sample_every, section.sample_steps, section.checkpoint_every, section.kind,
                    section.from_scratch, section.lora_rank]
    section.preset.change(apply_preset, section.preset, preset_fills, api_visibility="private")
    section.kind.change(show_kind, section.kind, [section.image_model_row, section.text_row],
                        api_visibility="private")
    # The text-to-image and LoRA choices come last, so that API calls written before they existed still work.
    job_inputs = [account, upload_id, section.name, section.start_from, section.base_model, section.model_size,
                  section.resolution, section.grayscale, section.class_conditional, section.length_unit,
                  section.length, section.batch_size, section.learning_rate, section.mixed_precision,
                  section.use_ema, section.sample_every, section.sample_steps, section.checkpoint_every,
                  section.kind, section.text_base, section.from_scratch, section.instance_prompt, section.lora_rank,
                  section.train_text_encoder]
    section.start.click(start_job, job_inputs, [section.start_report, job], api_name="start_job")
