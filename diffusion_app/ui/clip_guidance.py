"""Tab: CLIP-guided prompts, steering an unconditional model toward a text prompt while it samples."""

from __future__ import annotations

import gradio as gr

from ..catalog import UNCONDITIONAL
from ..service.clip_guidance import MAX_CUTOUTS, clip_objective
from ..service.clip_models import (DEFAULT_CLIP_ARCHITECTURE, DEFAULT_CLIP_WEIGHTS, SUGGESTED_ARCHITECTURES,
                                   ClipSpec, clip_config_names)
from ..service.denoising import to_pil
from ..service.guidance import GuidedRun
from ..service.sampling import MAX_STEPS, SamplingRequest
from ..service.schedulers import UNCONDITIONAL_SCHEDULERS
from ..service.studio import Studio
from .common import chosen_seed, model_dropdown, reports_errors, run_buttons, seed_controls, whole_number
from .guidance_widgets import (follow, guidance_controls, guidance_from_widgets, is_preview, loss_frame, loss_plot,
                               plot_update, schedule_controls, timing)


def build_tab(studio: Studio) -> None:
    max_batch = studio.settings.max_batch_size
    with gr.Row():
        with gr.Column(scale=1):
            model = model_dropdown(studio, UNCONDITIONAL)
            prompt = gr.Textbox(label="Prompt", lines=2, placeholder="a red apple on a wooden table")
            with gr.Row():
                architecture = gr.Dropdown(
                    list(SUGGESTED_ARCHITECTURES) + clip_config_names(studio.settings.clip_configs),
                    value=DEFAULT_CLIP_ARCHITECTURE, allow_custom_value=True, label="CLIP model",
                    info="Any open_clip model name.")
                weights = gr.Textbox(value=DEFAULT_CLIP_WEIGHTS, label="CLIP weights",
                                     info="A pretrained tag (openai, laion2b_s34b_b79k, ...; downloads on first "
                                          "use) or the path of a local checkpoint file (works offline).")
            scale, method = guidance_controls(default_scale=10)
            cutouts = gr.Slider(1, MAX_CUTOUTS, value=4, step=1, label="Cutouts",
                                info="Augmented crops CLIP sees per image and step: more is steadier and slower.")
            num_images = gr.Slider(1, max_batch, value=min(4, max_batch), step=1, label="Number of images")
            steps = gr.Slider(1, MAX_STEPS, value=50, step=1, label="Steps")
            scheduler = gr.Radio(list(UNCONDITIONAL_SCHEDULERS), value="DDIM", label="Scheduler")
            every, start, end = schedule_controls()
            seed, random_seed = seed_controls()
            generate, stop = run_buttons()
        with gr.Column(scale=2):
            gallery = gr.Gallery(label="Samples (previews show the predicted clean images)", format="png", columns=4,
                                 elem_classes="pixelated")
            plot = loss_plot()
            report = gr.Markdown()

    @reports_errors
    def run(model_name, prompt_text, architecture_name, weights_value, scale_value, method_value, cutout_count, count,
            step_count, scheduler_name, every_value, start_value, end_value, seed_value, use_random_seed,
            progress=gr.Progress()):
        request = SamplingRequest(
            model=model_name,
            num_images=whole_number(count, "Number of images"),
            steps=whole_number(step_count, "Steps"),
            seed=chosen_seed(seed_value, use_random_seed),
            scheduler=scheduler_name,
        ).validated(max_batch)
        guidance = guidance_from_widgets(scale_value, method_value, every_value, start_value, end_value)
        progress(0, desc="Loading CLIP model")
        objective = clip_objective(studio, ClipSpec(architecture_name, weights_value), prompt_text, cutout_count)
        if objective.truncation:
            gr.Warning(objective.truncation)
        progress(0, desc="Loading model")
        runs = {"guided": GuidedRun(studio, request, guidance, objective)}
        for _, step in follow(runs, progress):
            # Yielding every step lets Stop take effect after the current step.
            yield (to_pil(step.pred_original) if is_preview(step) else gr.skip(), plot_update(step, runs),
                   f"Step {step.index + 1}/{step.total}")
        guided = runs["guided"]
        yield guided.images(), loss_frame(runs), (
            f"Seed {request.seed} · {request.steps} {request.scheduler} steps · guidance scale {guidance.scale:g} "
            f"({guidance.method}) · {objective.cutouts} cutouts · {objective.clip.spec.label} · {timing(guided)}"
            + (f"\n\n{objective.truncation}" if objective.truncation else "")
        )

    event = generate.click(
        run, [model, prompt, architecture, weights, scale, method, cutouts, num_images, steps, scheduler, every, start,
              end, seed, random_seed], [gallery, plot, report], api_name="generate_clip_guidance")
    stop.click(None, cancels=[event])
