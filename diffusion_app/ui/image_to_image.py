"""Tab: image to image. Noise an input image to the strength's timestep and denoise it from there (SDEdit), with
an unconditional model or, guided by a prompt, a Stable Diffusion model."""

from __future__ import annotations

import gradio as gr

from ..catalog import TEXT_TO_IMAGE, UNCONDITIONAL
from ..core.denoising import to_pil
from ..core.schedulers import TEXT_TO_IMAGE_SCHEDULERS, UNCONDITIONAL_SCHEDULERS
from ..hardware import first_click
from ..service.gpu_time import gpu_seconds
from ..service.generation.image_to_image import SDEditRun, image_to_image_run
from ..service.generation.sampling import MAX_STEPS
from ..service.generation.sweep import AxisKind
from ..service.generation.text2img import DEFAULT_GUIDANCE_SCALE, TextToImageRequest
from .before_after import before_after_slider, show_before_after
from .code_panel import code_panel, picture_it_started_from
from .common import (EXAMPLE_PICTURE, EXAMPLES, chosen_seed, examples, how_it_works, number, reports_errors, run_buttons,
                     runs_on_gpu, sampling_request, seed_controls, whole_number, zip_download)
from .few_step import lora_controls, tiny_decoder_controls, wire_few_step
from .i18n import tr
from .outputs import ThrottledProgress, output_gallery, run_and_stop
from .prompt_options import prompt_notes, truncate_checkbox
from .remember import kept_in_history
from .sweep import SweepInput, SweepTab, sweep_panel
from .token_counter import token_counter

HOW_IT_WORKS = r"""
SDEdit (Meng et al. 2022) turns sampling into editing: instead of starting from pure noise $x_T$, it noises the
input $x_0$ to an intermediate timestep $t_s$ with the forward process,

$$x_{t_s} = \sqrt{\bar\alpha_{t_s}}\,x_0 + \sqrt{1-\bar\alpha_{t_s}}\,\epsilon,$$

and runs only the remaining reverse steps. The **strength** $s$ picks $t_s$: of $n$ steps, the last $\mathrm{round}(s\,n)$
run. Strength 0 returns the input; strength 1 starts from pure noise and ignores it (the same images as sampling
from scratch with that seed); in between, the model keeps the input's layout and colours and redraws its
details. Stable Diffusion does the same in its latent space, steered by the prompt.
"""
STRENGTH_INFO = ("How much noise: 0 keeps the input, 1 ignores it. The first gallery shows where denoising starts: "
                 "up to about 0.7 the input shows through the noise, by 0.9 it is hidden (the model may still find "
                 "its layout).")
SAMPLERS = list(dict.fromkeys([*UNCONDITIONAL_SCHEDULERS, *TEXT_TO_IMAGE_SCHEDULERS]))


def build_tab(studio, visitor_id: gr.BrowserState) -> list:
    max_batch = studio.settings.max_batch_size
    defaults = first_click(studio.settings.device)
    models = studio.model_names(UNCONDITIONAL) + studio.model_names(TEXT_TO_IMAGE)
    with gr.Row():
        with gr.Column(scale=1):
            model = gr.Dropdown(models, value=studio.catalog.default(UNCONDITIONAL), label="Model",
                                info="An unconditional model (SDEdit in pixels) or a text-to-image one (with a prompt).")
            image = gr.Image(value=str(EXAMPLE_PICTURE), label="Start from", type="pil",
                             sources=["upload", "clipboard"], height=200)
            strength = gr.Slider(0, 1, value=0.6, step=0.05, label="Strength",
                                 info=STRENGTH_INFO)
            prompt = gr.Textbox(label="Prompt (text-to-image models)", lines=2)
            token_counter(studio, model, prompt)
            negative_prompt = gr.Textbox(label="Negative prompt (text-to-image models)")
            token_counter(studio, model, negative_prompt)
            guidance = gr.Slider(1, 30, value=DEFAULT_GUIDANCE_SCALE, step=0.5,
                                 label="CFG scale (text-to-image models)")
            with gr.Row():
                sampler = gr.Dropdown(SAMPLERS, value="DDIM", label="Sampler",
                                      info="DDPM or DDIM for unconditional models; any for text to image.")
                steps = gr.Slider(1, MAX_STEPS, value=defaults.image_to_image_steps, step=1, precision=0, label="Steps")
            lora, lora_weight = lora_controls(studio, label="LoRA (text-to-image models)")
            tiny, tiny_final = tiny_decoder_controls(studio)
            truncate = truncate_checkbox()
            with gr.Row():
                fast = gr.Button("Fast: LCM-LoRA, 4 steps", size="sm", scale=0)
                few_step_note = gr.Markdown()
            num_images = gr.Slider(1, max_batch, value=min(defaults.num_images, max_batch), step=1, precision=0,
                                   label="Number of images", info=defaults.hint)
            seed, random_seed = seed_controls()
            generate, stop = run_buttons()
        with gr.Column(scale=2):
            start = output_gallery("Where denoising starts (the noised input; pixel models)", columns=4)
            gallery = output_gallery("Results", type="filepath", columns=4)
            compared = before_after_slider("Before and after (the start picture and the first result)")
            report = gr.Markdown()
            zip_download(studio, gallery)
    how_it_works(HOW_IT_WORKS)

    @kept_in_history(studio, "image-to-image", images_at=1, text_at=3)
    @runs_on_gpu(studio, lambda model_name, picture, strength_value, prompt_text, negative_text, cfg, sampler_name,
                 step_count, count, *_, **__: gpu_seconds(
        studio.catalog.get(model_name).kind, step_count * strength_value, count, studio.sample_pixels(model_name)))
    @reports_errors
    def generate_image_to_image(model_name, picture, strength_value, prompt_text, negative_text, cfg, sampler_name,
                                step_count, count, seed_value, use_random_seed, lora_name="", lora_scale=1.0,
                                tiny_name="", tiny_final_decode=False, truncate_prompts=False,
                                progress=gr.Progress()):
        """Redraw an image: noise it to the strength's timestep, then denoise with a model (and, for text-to-image
        models, a prompt).

        Args:
            model_name: an unconditional or text-to-image catalog model.
            picture: the image to start from.
            strength_value: 0 (the input as it is) to 1 (pure noise, the input ignored).
            prompt_text: what to draw (text-to-image models only).
            negative_text: what to steer away from (text-to-image models only).
            cfg: classifier-free guidance scale, 1-30 (text-to-image models only).
            sampler_name: DDPM or DDIM (unconditional models), or a Stable Diffusion sampler.
            step_count: denoising steps for the whole schedule; the strength's share of them runs.
            count: number of images.
            seed_value: seed of the first image, 0 to 2**32-1.
            use_random_seed: draw a random seed instead; the seed used is reported.
            lora_name: a LoRA trained on this model (text-to-image models only; empty: none).
            lora_scale: the LoRA's weight, 0-2.
            tiny_name: a tiny autoencoder (TAESD) of this model: previews every step (text-to-image models only).
            tiny_final_decode: decode the final images with the tiny autoencoder too, instead of the VAE.
            truncate_prompts: cut prompts at the text encoder's context instead of encoding longer ones in chunks.
        """
        progress = ThrottledProgress(progress)
        strength_value = number(strength_value, "Strength")
        if studio.catalog.get(model_name).kind == TEXT_TO_IMAGE:
            width, height = (side // 8 * 8 for side in picture.size) if picture is not None else (512, 512)
            request = TextToImageRequest(model_name, prompt_text, negative_text, whole_number(step_count, "Steps"),
                                         number(cfg, "CFG scale"), width, height, whole_number(count, "Number of images"),
                                         chosen_seed(seed_value, use_random_seed), sampler_name,
                                         lora=lora_name or None, lora_weight=number(lora_scale, "LoRA weight"),
                                         tiny_autoencoder=tiny_name or None, tiny_final_decode=bool(tiny_final_decode),
                                         truncate_long_prompts=bool(truncate_prompts))
            run = studio.start(image_to_image_run, request, picture, strength_value,
                               preview_every=1 if tiny_name else 5)
            for step in run:
                progress((step.index + 1, step.total), desc=tr("Denoising"), unit="steps")
                yield gr.skip(), step.preview or gr.skip(), tr(f"Step {step.index + 1}/{step.total}")
            # Stable Diffusion's start is a noised latent, not an image to show.
            lines = [f"Seed {run.request.seed} · strength {strength_value:g} in {run.seconds:.1f} s",
                     *prompt_notes(run)]
            yield [], run.images, "\n\n".join(map(tr, lines))
            return
        request = sampling_request(model_name, count, step_count, seed_value, use_random_seed, scheduler=sampler_name)
        run = studio.start(SDEditRun, request, picture, strength_value)
        for step in run:
            if step.index == 0:
                yield run.start_images(), gr.skip(), gr.skip()
            progress((step.index + 1, step.total), desc=tr("Denoising"), unit="steps")
            yield gr.skip(), to_pil(step.pred_original), tr(f"Step {step.index + 1}/{step.total}")
        yield run.start_images(), run.images(), tr(f"Seed {run.request.seed} · strength {strength_value:g}: "
                                                   f"{step.total} of {request.steps} {request.scheduler} steps in "
                                                   f"{run.seconds:.1f} s")

    wire_few_step(studio, fast, few_step_note, model, lora, sampler, steps, guidance, lora_weight, tiny, tiny_final)
    # The LoRA and the tiny decoder come last, so that API calls written before they existed still work.
    inputs = [model, image, strength, prompt, negative_prompt, guidance, sampler, steps, num_images, seed, random_seed,
              lora, lora_weight, tiny, tiny_final, truncate]
    run_event = run_and_stop(studio, generate, stop, generate_image_to_image, [*inputs, visitor_id],
                             [start, gallery, report], report, api_name="generate_image_to_image")
    show_before_after(run_event, image, gallery, compared)
    code_panel(studio, run_event, gallery, "Image to image", start=image, start_files=picture_it_started_from)
    sweep_panel(studio, "image-to-image", generate_image_to_image, inputs, SweepTab(
        {"Model": SweepInput(0, AxisKind("text")),
                   "Strength": SweepInput(2, AxisKind("float")),
                   "Prompt": SweepInput(3, AxisKind("text"), search_replace=True),
                   "CFG scale": SweepInput(5, AxisKind("float")),
                   "Sampler": SweepInput(6, AxisKind("text", tuple(SAMPLERS))),
                   "Steps": SweepInput(7, AxisKind("int")),
                   "Seed": SweepInput(9, AxisKind("int"))},
        count=8, seed=9, random_seed=10, images_at=1), visitor_id)
    pixel_model, text_model = studio.catalog.default(UNCONDITIONAL), studio.catalog.default(TEXT_TO_IMAGE)
    rows = []
    if pixel_model and studio.catalog.get(pixel_model).available_offline():
        rows += [[pixel_model, str(EXAMPLE_PICTURE), 0.8, "", "", DEFAULT_GUIDANCE_SCALE, "DDIM", 50,
                  min(4, max_batch), 0, False, "", 1.0, "", False, False],
                 [pixel_model, str(EXAMPLES / "grinning_face.png"), 0.5, "", "", DEFAULT_GUIDANCE_SCALE, "DDPM", 100,
                  min(4, max_batch), 1, False, "", 1.0, "", False, False]]
    if text_model and studio.catalog.get(text_model).available_offline():
        rows.append([text_model, str(EXAMPLE_PICTURE), 0.7, "blue heart", "", DEFAULT_GUIDANCE_SCALE, "DPM++ 2M", 25,
                     min(4, max_batch), 2, False, "", 1.0, "", False, False])
    if rows:
        examples(rows, inputs, label="Examples (bundled models, offline)")
    return inputs

