"""Tab 1: unconditional sampling from a DDPM model."""

from __future__ import annotations

import gradio as gr

from ..catalog import UNCONDITIONAL
from ..core.denoising import to_pil
from ..hardware import first_click
from ..service.gpu_time import gpu_seconds
from ..service.generation.sampling import MAX_STEPS, SamplingRun
from ..service.studio import Studio
from ..service.generation.sweep import AxisKind
from .code_panel import code_panel
from .common import (examples, how_it_works, model_dropdown, reports_errors, run_buttons, runs_on_gpu,
                     sampling_request, seed_controls, zip_download)
from .i18n import tr
from .outputs import ThrottledProgress, is_preview, output_gallery, run_and_stop
from .remember import kept_in_history
from .sweep import SweepInput, SweepTab, sweep_panel

HOW_IT_WORKS = r"""
Sampling starts from pure noise $x_T \sim \mathcal{N}(0, I)$ and applies the learned reverse step $T$ times
(DDPM, Ho et al. 2020). The model $\epsilon_\theta$ predicts the noise in $x_t$; with the noise schedule
$\beta_t$, $\alpha_t = 1 - \beta_t$ and $\bar\alpha_t = \prod_{s \le t} \alpha_s$:

$$x_{t-1} = \frac{1}{\sqrt{\alpha_t}}\Big(x_t - \frac{\beta_t}{\sqrt{1-\bar\alpha_t}}\,\epsilon_\theta(x_t, t)\Big) + \sigma_t z,\quad z \sim \mathcal{N}(0, I)$$

With fewer steps than the model was trained with, the scheduler skips timesteps; DDPM degrades quickly
there, which is what the DDIM tab is for. The same seed always gives the same image.
"""


def build_tab(studio: Studio, visitor_id: gr.BrowserState) -> list:
    max_batch = studio.settings.max_batch_size
    defaults = first_click(studio.settings.device)
    with gr.Row():
        with gr.Column(scale=1):
            model = model_dropdown(studio, UNCONDITIONAL)
            num_images = gr.Slider(1, max_batch, value=min(defaults.num_images, max_batch), step=1, precision=0,
                                   label="Number of images", info=defaults.hint)
            steps = gr.Slider(1, MAX_STEPS, value=defaults.unconditional_steps, step=1, precision=0, label="Steps",
                              info="Denoising steps. DDPM was trained with 1000; fewer steps are faster and rougher.")
            seed, random_seed = seed_controls()
            generate, stop = run_buttons()
        with gr.Column(scale=2):
            gallery = output_gallery("Samples", type="filepath", columns=4)
            report = gr.Markdown()
            zip_download(studio, gallery)
    how_it_works(HOW_IT_WORKS)

    @kept_in_history(studio, "unconditional", images_at=0)
    @runs_on_gpu(studio, lambda model_name, count, step_count, *_, **__: gpu_seconds(
        UNCONDITIONAL, step_count, count, studio.sample_pixels(model_name)))
    @reports_errors
    def generate_unconditional(model_name, count, step_count, seed_value, use_random_seed, progress=gr.Progress()):
        """Sample images from an unconditional DDPM model.

        Args:
            model_name: a catalog model of kind unconditional, e.g. the bundled default.
            count: number of images, 1 to the server's batch limit.
            step_count: DDPM denoising steps, 1-1000.
            seed_value: seed of the first image (image i uses seed + i), 0 to 2**32-1.
            use_random_seed: draw a random seed instead; the seed used is reported.
        """
        progress = ThrottledProgress(progress)
        request = sampling_request(model_name, count, step_count, seed_value, use_random_seed)
        progress(0, desc=tr("Loading model"))
        sampling = studio.start(SamplingRun, request)
        for step in sampling:
            progress((step.index + 1, step.total), desc=tr("Denoising"), unit="steps")
            # Yielding every step lets Stop take effect after the current step; what Stop leaves is a preview.
            yield (to_pil(step.pred_original) if is_preview(step) else gr.skip(),
                   tr(f"Step {step.index + 1}/{step.total} · {sampling.seconds:.1f} s"))
        images = sampling.images()
        yield images, tr(
            f"Seed {sampling.request.seed} (image i uses seed + i) · {request.steps} DDPM steps "
            f"in {sampling.seconds:.1f} s"
        )

    inputs = [model, num_images, steps, seed, random_seed]
    run_event = run_and_stop(studio, generate, stop, generate_unconditional, [*inputs, visitor_id], [gallery, report], report,
                 api_name="generate_unconditional")
    code_panel(studio, run_event, gallery, 'Unconditional')
    sweep_panel(studio, "unconditional", generate_unconditional, inputs, SweepTab(
        {"Model": SweepInput(0, AxisKind("text")),
                   "Steps": SweepInput(2, AxisKind("int")),
                   "Seed": SweepInput(3, AxisKind("int"))},
        count=1, seed=3, random_seed=4, images_at=0), visitor_id)
    default = studio.catalog.default(UNCONDITIONAL)
    if default:
        examples([[default, min(4, max_batch), 100, 42, False], [default, 1, 1000, 7, False]],
                 inputs, label="Examples (bundled model, offline)")
    return inputs

