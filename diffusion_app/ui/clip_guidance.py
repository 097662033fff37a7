"""Tab: CLIP-guided prompts, steering an unconditional model toward a text prompt while it samples."""

from __future__ import annotations

from dataclasses import replace

import gradio as gr

from ..catalog import UNCONDITIONAL
from ..core.denoising import to_pil
from ..core.schedulers import UNCONDITIONAL_SCHEDULERS
from ..hardware import first_click
from ..service.generation.clip_guidance import MAX_CUTOUTS, ClipPrompt
from ..service.models.clip_models import (DEFAULT_CLIP_WEIGHTS, LOCAL_WEIGHTS, SUGGESTED_ARCHITECTURES, ClipSpec,
                                          clip_config_files)
from ..service.gpu_time import CUTOUTS_PER_PASS, gpu_seconds, guided_passes
from ..service.generation.guidance import GUIDANCE_METHODS, GuidedRun
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

HOW_IT_WORKS = r"""
CLIP embeds images and text in one space, so the distance between the predicted clean image
$\hat x_0(x_t)$ and the prompt's embedding is a loss guidance can follow (Hugging Face diffusion course,
unit 2). Each guided step takes $n$ augmented **cutouts** of $\hat x_0$ (random resized crop to CLIP's input
size, a small rotation, a flip, CLIP's normalisation), embeds them ($e_i$, normalised) and the prompt ($p$):

$$L = \frac{1}{n}\sum_{i=1}^{n} 2\arcsin^2\!\Big(\frac{\lVert e_i - p \rVert}{2}\Big), \qquad
x_t \leftarrow x_t - s\,\sqrt{\bar\alpha_t}\;\nabla_{x_t} L$$

the squared great-circle distance, with the step scaled by the noise level of timestep $t$ (small while
$x_t$ is mostly noise). More cutouts give a steadier gradient and cost more. The bundled emoji-clip works
offline (it was trained on these cutouts of emoji, captioned with their names); open_clip's weights download
on first use.
"""


def build_tab(studio: Studio, visitor_id: gr.BrowserState) -> list:
    max_batch = studio.settings.max_batch_size
    defaults = first_click(studio.settings.device)
    with gr.Row():
        with gr.Column(scale=1):
            model = model_dropdown(studio, UNCONDITIONAL)
            prompt = gr.Textbox(value="red heart", label="Prompt", lines=2,
                                info="Something the CLIP model knows; the bundled one learned emoji names.")
            offered = studio.offered_clip_specs()
            public = studio.settings.public
            with gr.Row():
                names = [spec.architecture for spec in offered]
                if not public:
                    names += [*SUGGESTED_ARCHITECTURES, *clip_config_files(studio.settings.clip_configs)]
                architecture = gr.Dropdown(list(dict.fromkeys(names)), value=offered[0].architecture,
                                           allow_custom_value=not public, label="CLIP model",
                                           info="A bundled CLIP model (works offline) or an open_clip model name.")
                weights = gr.Textbox(value=offered[0].weights, label="CLIP weights", interactive=not public,
                                     info=f"`{LOCAL_WEIGHTS}` for a bundled model; else a pretrained tag (openai, "
                                          "laion2b_s34b_b79k, ...; downloads on first use) or the path of a local "
                                          "checkpoint file (works offline).")
            scale, method = guidance_controls(default_scale=10)
            cutouts = gr.Slider(1, MAX_CUTOUTS, value=4, step=1, precision=0, label="Cutouts",
                                info="Augmented crops CLIP sees per image and step: more is steadier and slower.")
            num_images = gr.Slider(1, max_batch, value=min(defaults.num_images, max_batch), step=1, precision=0,
                                   label="Number of images", info=defaults.hint)
            steps = gr.Slider(1, MAX_STEPS, value=defaults.guidance_steps, step=1, precision=0, label="Steps")
            scheduler = gr.Radio(list(UNCONDITIONAL_SCHEDULERS), value="DDIM", label="Scheduler")
            every, start, end = schedule_controls()
            seed, random_seed = seed_controls()
            side_by_side = gr.Checkbox(value=False, label="Unguided vs guided",
                                       info="Also sample without guidance from the same seed (twice the time).")
            generate, stop = run_buttons()
        with gr.Column(scale=2):
            gallery = output_gallery("Samples (previews show the predicted clean images)", type="filepath", columns=4)
            unguided_gallery = output_gallery("Unguided (same seed)", columns=4)
            compared = before_after_slider("Unguided and guided (the first image of each)")
            plot = loss_plot()
            report = gr.Markdown()
            zip_download(studio, gallery)
    how_it_works(HOW_IT_WORKS)

    @kept_in_history(studio, "clip-guidance", images_at=0, text_at=1)
    @runs_on_gpu(studio, lambda model_name, prompt_text, architecture_name, weights_value, scale_value, method_value,
                 cutout_count, count, step_count, *_, **__: gpu_seconds(
        UNCONDITIONAL, step_count, count, studio.sample_pixels(model_name),
        passes=guided_passes(method_value) + cutout_count / CUTOUTS_PER_PASS))
    @reports_errors
    def generate_clip_guidance(model_name, prompt_text, architecture_name, weights_value, scale_value, method_value,
                               cutout_count, count, step_count, scheduler_name, every_value, start_value, end_value,
                               seed_value, use_random_seed, compare=False, progress=gr.Progress()):
        """Sample an unconditional model while CLIP pulls the predicted clean image toward a text prompt.

        Args:
            model_name: a catalog model of kind unconditional.
            prompt_text: what the images should show (CLIP's 77-token context; longer prompts are truncated).
            architecture_name: an open_clip model name, e.g. ViT-B-32.
            weights_value: an open_clip pretrained tag (e.g. openai) or the path of a local checkpoint file.
            scale_value: guidance scale, 0 (off) to 200.
            method_value: fast (gradient through the x0 formula only) or exact (through the UNet too).
            cutout_count: augmented crops CLIP sees per image and step, 1-64.
            count: number of images.
            step_count: denoising steps, 1-1000.
            scheduler_name: DDPM or DDIM.
            every_value: guide every k-th step.
            start_value: fraction of the steps where guidance starts, 0-1.
            end_value: fraction of the steps where guidance ends, 0-1.
            seed_value: seed of the first image, 0 to 2**32-1.
            use_random_seed: draw a random seed instead; the seed used is reported.
            compare: also sample without guidance from the same seeds, for the before/after slider.
        """
        request = sampling_request(model_name, count, step_count, seed_value, use_random_seed,
                                   scheduler=scheduler_name).validated(max_batch)
        guidance = guidance_from_widgets(scale_value, method_value, every_value, start_value, end_value)
        progress(0, desc=tr("Loading model"))
        clip_prompt = ClipPrompt(ClipSpec(architecture_name, weights_value), prompt_text, cutout_count)
        runs = {"guided": studio.start(GuidedRun, request, guidance, clip_prompt)}
        objective = runs["guided"].objective
        if compare:  # the same seeds, scale 0: what the model draws unsteered
            runs["unguided"] = studio.start(GuidedRun, runs["guided"].request, replace(guidance, scale=0.0),
                                            clip_prompt)
        if objective.truncation:
            gr.Warning(tr(objective.truncation))
        for label, step in follow(runs, progress):
            # Yielding every step lets Stop take effect after the current step.
            preview = label == "guided" and is_preview(step)
            yield (to_pil(step.pred_original) if preview else gr.skip(), plot_update(step, runs),
                   tr(f"{label}: step {step.index + 1}/{step.total}" if compare else
                      f"Step {step.index + 1}/{step.total}"), gr.skip())
        guided = runs["guided"]
        unguided = f", unguided in {timing(runs['unguided'])}" if compare else ""
        report = [f"Seed {request.seed} · {request.steps} {request.scheduler} steps · guidance scale "
                  f"{guidance.scale:g} ({guidance.method}) · {objective.cutouts} cutouts · "
                  f"{objective.clip_label} · {timing(guided)}{unguided}"]
        if objective.truncation:
            report.append(objective.truncation)
        unguided_images = runs["unguided"].images() if compare else []
        yield guided.images(), loss_frame(runs), "\n\n".join(map(tr, report)), unguided_images

    def suggest_weights(name):
        """The weights that go with a CLIP model: its folder's for a bundled one, OpenAI's for open_clip's."""
        bundled = name in studio.clip_folders()
        return LOCAL_WEIGHTS if bundled else DEFAULT_CLIP_WEIGHTS

    architecture.change(suggest_weights, architecture, weights, api_visibility="private")
    inputs = [model, prompt, architecture, weights, scale, method, cutouts, num_images, steps, scheduler, every, start,
              end, seed, random_seed, side_by_side]
    # The unguided gallery is the last output and its box the last input, so older API calls still work.
    run_event = run_and_stop(studio, generate, stop, generate_clip_guidance, [*inputs, visitor_id],
                             [gallery, plot, report, unguided_gallery], report, api_name="generate_clip_guidance")
    show_before_after(run_event, unguided_gallery, gallery, compared)
    code_panel(studio, run_event, gallery, "CLIP guidance")
    sweep_panel(studio, "clip-guidance", generate_clip_guidance, inputs, SweepTab(
        {"Model": SweepInput(0, AxisKind("text")),
                   "Prompt": SweepInput(1, AxisKind("text"), search_replace=True),
                   "Guidance scale": SweepInput(4, AxisKind("float")),
                   "Method": SweepInput(5, AxisKind("text", GUIDANCE_METHODS)),
                   "Cutouts": SweepInput(6, AxisKind("int")),
                   "Steps": SweepInput(8, AxisKind("int")),
                   "Scheduler": SweepInput(9, AxisKind("text", tuple(UNCONDITIONAL_SCHEDULERS))),
                   "Seed": SweepInput(13, AxisKind("int"))},
        count=7, seed=13, random_seed=14, images_at=0), visitor_id)
    default = studio.catalog.default(UNCONDITIONAL)
    if default:
        clip = offered[0]
        examples([[default, "red heart", clip.architecture, clip.weights, 10, "fast", 8,
                   min(2, max_batch), 50, "DDIM", 1, 0, 1, 0, False, True],
                  [default, "grinning face", clip.architecture, clip.weights, 20, "exact",
                   16, 1, 50, "DDIM", 2, 0, 0.8, 3, False, False]],
                 inputs, label="Examples (offline with the bundled CLIP)" if clip.weights == LOCAL_WEIGHTS
                 else "Examples (CLIP weights download on first use)")
    return inputs

