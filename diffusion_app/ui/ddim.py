"""Tab 2: DDIM step control, streaming x_t and the predicted clean image as denoising proceeds."""

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
from .common import (examples, how_it_works, model_dropdown, number, reports_errors, run_buttons, runs_on_gpu,
                     sampling_request, seed_controls, whole_number, zip_download)
from .i18n import tr
from .outputs import ThrottledProgress, output_gallery, run_and_stop
from .remember import kept_in_history
from .sweep import SweepInput, SweepTab, sweep_panel

HOW_IT_WORKS = r"""
DDIM (Song et al. 2021) reuses a DDPM model but takes large, skipping steps. At each step the model's noise
estimate gives the **predicted clean image**, shown on the right:

$$\hat x_0 = \frac{x_t - \sqrt{1-\bar\alpha_t}\,\epsilon_\theta(x_t, t)}{\sqrt{\bar\alpha_t}}$$

and the next sample $x_{t'}$ ($t' < t$, shown on the left) points back toward $x_t$ from that estimate:

$$x_{t'} = \sqrt{\bar\alpha_{t'}}\,\hat x_0 + \sqrt{1-\bar\alpha_{t'}-\sigma_t^2}\;\epsilon_\theta(x_t, t) + \sigma_t z,
\qquad \sigma_t = \eta\sqrt{\tfrac{1-\bar\alpha_{t'}}{1-\bar\alpha_t}}\sqrt{1-\tfrac{\bar\alpha_t}{\bar\alpha_{t'}}}$$

With $\eta = 0$ sampling is deterministic; $\eta = 1$ adds DDPM's amount of fresh noise.
"""


def build_tab(studio: Studio, visitor_id: gr.BrowserState) -> list:
    max_batch = studio.settings.max_batch_size
    defaults = first_click(studio.settings.device)
    with gr.Row():
        with gr.Column(scale=1):
            model = model_dropdown(studio, UNCONDITIONAL)
            steps = gr.Slider(1, MAX_STEPS, value=defaults.ddim_steps, step=1, precision=0, label="DDIM steps",
                              info="DDIM skips timesteps: 20-50 steps come close to DDPM's 1000.")
            eta = gr.Slider(0, 1, value=0, step=0.05, label="Eta",
                            info="Noise added back at each step: 0 is deterministic DDIM, 1 behaves like DDPM.")
            num_images = gr.Slider(1, max_batch, value=min(defaults.num_images, max_batch), step=1, precision=0,
                                   label="Number of images", info=defaults.hint)
            preview_every = gr.Slider(1, 100, value=5, step=1, precision=0, label="Preview every k steps")
            seed, random_seed = seed_controls()
            generate, stop = run_buttons()
        with gr.Column(scale=2):
            with gr.Row():
                noisy = output_gallery("x_t: the current noisy sample", type="filepath", columns=2)
                predicted = output_gallery("Predicted clean image x0", columns=2)
            report = gr.Markdown()
            zip_download(studio, noisy)
    how_it_works(HOW_IT_WORKS)

    @kept_in_history(studio, "ddim", images_at=0)
    @runs_on_gpu(studio, lambda model_name, step_count, eta_value, count, *_, **__: gpu_seconds(
        UNCONDITIONAL, step_count, count, studio.sample_pixels(model_name)))
    @reports_errors
    def generate_ddim(model_name, step_count, eta_value, count, every, seed_value, use_random_seed, progress=gr.Progress()):
        """Sample with a DDIM scheduler, streaming x_t and the predicted clean image every few steps.

        Args:
            model_name: a catalog model of kind unconditional.
            step_count: DDIM steps, 1-1000.
            eta_value: 0 is deterministic DDIM, 1 adds as much noise per step as DDPM.
            count: number of images, 1 to the server's batch limit.
            every: show a preview every this many steps.
            seed_value: seed of the first image, 0 to 2**32-1.
            use_random_seed: draw a random seed instead; the seed used is reported.
        """
        progress = ThrottledProgress(progress)
        request = sampling_request(model_name, count, step_count, seed_value, use_random_seed,
                                   scheduler="DDIM", eta=number(eta_value, "Eta"))
        every = whole_number(every, "Preview interval")
        if every < 1:
            raise ValueError(f"Preview interval must be at least 1, got {every}.")
        progress(0, desc=tr("Loading model"))
        sampling = studio.start(SamplingRun, request)
        for step in sampling:
            progress((step.index + 1, step.total), desc=tr("Denoising"), unit="steps")
            last = step.index + 1 == step.total
            if (step.index + 1) % every == 0 and not last:
                yield to_pil(step.sample), to_pil(step.pred_original), tr(
                    f"Step {step.index + 1}/{step.total} · t = {step.timestep} · {sampling.seconds:.1f} s"
                )
        per_step = sampling.seconds / request.steps
        yield sampling.images(), to_pil(step.pred_original), tr(
            f"Seed {sampling.request.seed} · {request.steps} DDIM steps, eta {request.eta:g}, in "
            f"{sampling.seconds:.1f} s ({per_step * 1000:.0f} ms/step). DDPM's 1000 steps on this model "
            f"would take about {per_step * 1000:.0f} s."
        )

    inputs = [model, steps, eta, num_images, preview_every, seed, random_seed]
    run_event = run_and_stop(studio, generate, stop, generate_ddim, [*inputs, visitor_id], [noisy, predicted, report], report,
                 api_name="generate_ddim")
    code_panel(studio, run_event, noisy, 'DDIM step control')
    sweep_panel(studio, "ddim", generate_ddim, inputs, SweepTab(
        {"Model": SweepInput(0, AxisKind("text")),
                   "DDIM steps": SweepInput(1, AxisKind("int")),
                   "Eta": SweepInput(2, AxisKind("float")),
                   "Seed": SweepInput(5, AxisKind("int"))},
        count=3, seed=5, random_seed=6, images_at=0), visitor_id)
    default = studio.catalog.default(UNCONDITIONAL)
    if default:
        examples([[default, 50, 0.0, min(4, max_batch), 5, 42, False], [default, 10, 1.0, 1, 1, 7, False]],
                 inputs, label="Examples (bundled model, offline)")
    return inputs

