"""Tab: colour guidance, steering an unconditional model toward a colour while it samples."""

from __future__ import annotations

from dataclasses import replace

import gradio as gr

from ..catalog import UNCONDITIONAL
from ..core.denoising import to_pil
from ..core.schedulers import UNCONDITIONAL_SCHEDULERS
from ..hardware import first_click
from ..service.gpu_time import gpu_seconds, guided_passes
from ..service.generation.guidance import GUIDANCE_METHODS, ColourObjective, GuidedRun
from ..service.generation.sampling import MAX_STEPS
from ..service.studio import Studio
from ..service.generation.sweep import AxisKind
from .before_after import before_after_slider, show_before_after
from .code_panel import code_panel
from .common import (examples, how_it_works, model_dropdown, reports_errors, run_buttons, runs_on_gpu,
                     sampling_request, seed_controls, zip_download)
from .guidance_widgets import (follow, guidance_controls, guidance_from_widgets, loss_frame, loss_plot, plot_update,
                               schedule_controls, timing)
from .i18n import tr
from .outputs import is_preview, output_gallery, run_and_stop
from .remember import kept_in_history
from .sweep import SweepInput, SweepTab, sweep_panel

DEFAULT_COLOUR = "#e8702a"
SCALE_INFO = ("0 turns guidance off. The push adds up over the steps: about 125 / steps tints the emoji and keeps "
              "it; twice that turns most of it the colour, and higher wipes the picture out into flat colour.")

HOW_IT_WORKS = r"""
Guidance steers an unconditional model at sampling time, with no retraining (Hugging Face diffusion
course, unit 2). At each guided step the model's noise estimate gives the predicted clean image
$\hat x_0(x_t)$; a loss on it measures how far it is from what we want, here the mean absolute difference to
the target colour $c$ (mapped to $[-1, 1]$):

$$L(x_t) = \operatorname{mean}\,\lvert \hat x_0(x_t) - c \rvert, \qquad x_t \leftarrow x_t - s\,\nabla_{x_t} L(x_t)$$

then the scheduler takes its usual step from the moved $x_t$. **fast** treats the noise estimate as a
constant, so the gradient flows through the $\hat x_0$ formula only; **exact** differentiates through the
UNet too (slower, more memory). The scale $s$ sets how hard it steers: too high and the image turns into
flat colour. The plot shows $L$ at each guided step.
"""


def build_tab(studio: Studio, visitor_id: gr.BrowserState) -> list:
    max_batch = studio.settings.max_batch_size
    defaults = first_click(studio.settings.device)
    with gr.Row():
        with gr.Column(scale=1):
            model = model_dropdown(studio, UNCONDITIONAL)
            colour = gr.ColorPicker(value=DEFAULT_COLOUR, label="Target colour")
            scale, method = guidance_controls(default_scale=defaults.colour_guidance_scale, info=SCALE_INFO)
            num_images = gr.Slider(1, max_batch, value=min(defaults.num_images, max_batch), step=1, precision=0,
                                   label="Number of images", info=defaults.hint)
            steps = gr.Slider(1, MAX_STEPS, value=defaults.guidance_steps, step=1, precision=0, label="Steps")
            scheduler = gr.Radio(list(UNCONDITIONAL_SCHEDULERS), value="DDIM", label="Scheduler")
            side_by_side = gr.Checkbox(value=True, label="Unguided vs guided",
                                       info="Also sample without guidance from the same seed.")
            every, start, end = schedule_controls()
            seed, random_seed = seed_controls()
            generate, stop = run_buttons()
        with gr.Column(scale=2):
            with gr.Row():
                guided_gallery = output_gallery("Guided", type="filepath", columns=2)
                unguided_gallery = output_gallery("Unguided (same seed)", columns=2)
            compared = before_after_slider("Unguided and guided (the first image of each)")
            plot = loss_plot()
            report = gr.Markdown()
            zip_download(studio, guided_gallery)
    how_it_works(HOW_IT_WORKS)

    @kept_in_history(studio, "colour-guidance", images_at=0, text_at=1)
    @runs_on_gpu(studio, lambda model_name, colour_value, scale_value, method_value, count, step_count, scheduler_name,
                 compare, *_, **__: gpu_seconds(UNCONDITIONAL, step_count, count, studio.sample_pixels(model_name),
                                                passes=guided_passes(method_value) + bool(compare)))
    @reports_errors
    def generate_colour_guidance(model_name, colour_value, scale_value, method_value, count, step_count,
                                 scheduler_name, compare, every_value, start_value, end_value, seed_value,
                                 use_random_seed, progress=gr.Progress()):
        """Sample an unconditional model while a loss on the predicted clean image pulls it toward a colour.

        Args:
            model_name: a catalog model of kind unconditional.
            colour_value: the target colour as #rrggbb.
            scale_value: guidance scale, 0 (off) to 200.
            method_value: fast (gradient through the x0 formula only) or exact (through the UNet too).
            count: number of images.
            step_count: denoising steps, 1-1000.
            scheduler_name: DDPM or DDIM.
            compare: also sample without guidance from the same seed.
            every_value: guide every k-th step.
            start_value: fraction of the steps where guidance starts, 0-1.
            end_value: fraction of the steps where guidance ends, 0-1.
            seed_value: seed of the first image, 0 to 2**32-1.
            use_random_seed: draw a random seed instead; the seed used is reported.
        """
        request = sampling_request(model_name, count, step_count, seed_value, use_random_seed,
                                   scheduler=scheduler_name)
        guidance = guidance_from_widgets(scale_value, method_value, every_value, start_value, end_value)
        objective = ColourObjective(colour_value)
        progress(0, desc=tr("Loading model"))
        runs = {"guided": studio.start(GuidedRun, request, guidance, objective)}
        if compare:
            runs["unguided"] = studio.start(GuidedRun, runs["guided"].request, replace(guidance, scale=0.0), objective)
        for label, step in follow(runs, progress):
            # Yielding every step lets Stop take effect after the current step.
            preview = label == "guided" and is_preview(step)
            yield (to_pil(step.pred_original) if preview else gr.skip(), gr.skip(), plot_update(step, runs),
                   tr(f"{label}: step {step.index + 1}/{step.total}"))
        images = {label: sampling.images() for label, sampling in runs.items()}
        guided = runs["guided"]
        distances = ", ".join(f"{tr(label)} {objective.distance(found):.3f}" for label, found in images.items())
        run = (f"Seed {guided.request.seed} · {request.steps} {request.scheduler} steps · guidance scale "
               f"{guidance.scale:g} ({guidance.method}) · guided in {timing(guided)}")
        if compare:
            run = f"{run}, unguided in {timing(runs['unguided'])}"
        distance = f"Mean distance to {objective.hex} (mean absolute pixel difference, 0-1): {distances}"
        yield images["guided"], images.get("unguided", []), loss_frame(runs), f"{tr(run)}\n\n{tr(distance)}"

    inputs = [model, colour, scale, method, num_images, steps, scheduler, side_by_side, every, start, end, seed,
              random_seed]
    run_event = run_and_stop(studio, generate, stop, generate_colour_guidance, [*inputs, visitor_id],
                             [guided_gallery, unguided_gallery, plot, report], report,
                             api_name="generate_colour_guidance")
    show_before_after(run_event, unguided_gallery, guided_gallery, compared)
    code_panel(studio, run_event, guided_gallery, "Colour guidance")
    sweep_panel(studio, "colour-guidance", generate_colour_guidance, inputs, SweepTab(
        {"Model": SweepInput(0, AxisKind("text")),
                   "Target colour": SweepInput(1, AxisKind("text")),
                   "Guidance scale": SweepInput(2, AxisKind("float")),
                   "Method": SweepInput(3, AxisKind("text", GUIDANCE_METHODS)),
                   "Steps": SweepInput(5, AxisKind("int")),
                   "Scheduler": SweepInput(6, AxisKind("text", tuple(UNCONDITIONAL_SCHEDULERS))),
                   "Seed": SweepInput(11, AxisKind("int"))},
        count=4, seed=11, random_seed=12, images_at=0), visitor_id)
    default = studio.catalog.default(UNCONDITIONAL)
    if default:
        examples([[default, "#d62828", 2.5, "fast", min(4, max_batch), 50, "DDIM", True, 1, 0, 1, 0, False],
                  [default, "#1f5fd1", 8, "exact", 1, 50, "DDIM", True, 2, 0, 0.6, 1, False]],
                 inputs, label="Examples (bundled model, offline)")
    return inputs

