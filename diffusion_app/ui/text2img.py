"""Tab: Stable Diffusion text to image, with live previews, Stop, and settings read back from a PNG."""

from __future__ import annotations

import gradio as gr

from ..catalog import TEXT_TO_IMAGE, TINY_AUTOENCODER
from ..core.schedulers import TEXT_TO_IMAGE_SCHEDULERS
from ..hardware import first_click
from ..service.gpu_time import gpu_seconds
from ..service.models.model_configs import native_resolution
from ..service.studio import Studio
from ..service.generation.sweep import AxisKind
from ..service.generation.text2img import (DEFAULT_GUIDANCE_SCALE, MAX_GUIDANCE, MAX_SIDE, MAX_STEPS, MIN_SIDE,
                                           SIDE_MULTIPLE, TextToImageRequest, TextToImageRun)
from ..service.generation.text2img_parameters import request_fields_from_png
from .code_panel import code_panel
from .common import (chosen_entry, chosen_seed, examples, how_it_works, model_dropdown, number, reports_errors,
                     run_buttons, runs_on_gpu, seed_controls, whole_number, zip_download)
from .few_step import lora_controls, tiny_decoder_controls, wire_few_step
from .i18n import error, tr
from .outputs import ThrottledProgress, output_gallery, run_and_stop
from .prompt_options import prompt_notes, truncate_checkbox
from .remember import kept_in_history
from .sweep import SweepInput, SweepTab, sweep_panel
from .token_counter import token_counter

HOW_IT_WORKS = r"""
Stable Diffusion (Rombach et al. 2022) denoises in the 8x smaller latent space of a VAE. CLIP's text
encoder turns the prompt $c$ into embeddings the UNet attends to. **Classifier-free guidance** runs the
UNet twice per step, with the prompt and with the negative (or empty) prompt $c_-$, and extrapolates:

$$\hat\epsilon = \epsilon_\theta(z_t, t, c_-) + w\,\big(\epsilon_\theta(z_t, t, c) - \epsilon_\theta(z_t, t, c_-)\big)$$

with $w$ the CFG scale ($w = 1$: no guidance, one UNet call per step). The sampler turns $\hat\epsilon$
into the next latent $z_{t-1}$; after the last step the VAE decodes $z_0$ into the image. Previews map the
latent's 4 channels to RGB with a fixed linear map instead of decoding.
"""
DEFAULT_SIDE = 512  # Stable Diffusion 1.5's, for a model whose configs are not on this machine yet


def native_side(studio: Studio, name: str | None) -> int:
    """The image side the model was trained at (64 for the bundled emoji-t2i, 512 for Stable Diffusion 1.5): a
    latent model draws its subjects at that size, and repeats or loses them at others."""
    try:
        side = native_resolution(chosen_entry(studio, name)) if name else None
    except ValueError:
        side = None
    return min(max(side or DEFAULT_SIDE, MIN_SIDE), MAX_SIDE)


def model_status(studio: Studio, name: str | None) -> str:
    """Whether the chosen model can load here, and how to provide it when it cannot."""
    if not name:
        return ""
    try:
        entry = chosen_entry(studio, name)
    except ValueError as err:
        return f"**{tr(str(err))}**"
    if entry.kind != TEXT_TO_IMAGE:
        return tr(f"**`{name}` is a {entry.kind} model**; this tab needs a text-to-image pipeline.")
    if entry.available_offline():
        return tr(f"`{name}` is available on this machine.")
    if studio.settings.offline:
        return tr(f"**`{name}` is not available offline.** Run the app once with network access to download it, "
                  f"or download it elsewhere and add the folder: `python app.py --add-model NAME=/path/to/folder`.")
    return tr(f"`{name}` downloads from the Hugging Face hub on first use ({entry.description or 'hub model'}).")


def build_tab(studio: Studio, visitor_id: gr.BrowserState) -> list:
    max_batch = studio.settings.max_batch_size
    defaults = first_click(studio.settings.device)
    default_model = studio.catalog.default(TEXT_TO_IMAGE)
    side = native_side(studio, default_model)
    with gr.Row():
        with gr.Column(scale=1):
            model = model_dropdown(studio, TEXT_TO_IMAGE, value=default_model,
                                   allow_custom_value=not studio.settings.public,
                                   info="A listed model." if studio.settings.public else
                                   "A listed model, a hub repo id (owner/name) or a local diffusers folder.")
            status = gr.Markdown(model_status(studio, default_model))
            prompt = gr.Textbox(value="red heart", label="Prompt", lines=3,
                                placeholder="e.g. a watercolor painting of a lighthouse at dawn")
            token_counter(studio, model, prompt)
            negative_prompt = gr.Textbox(label="Negative prompt", lines=2, placeholder="e.g. blurry, low quality",
                                         info="What to steer away from (used when CFG scale > 1).")
            token_counter(studio, model, negative_prompt)
            with gr.Row():
                scheduler = gr.Dropdown(list(TEXT_TO_IMAGE_SCHEDULERS), value="DPM++ 2M", label="Sampler")
                steps = gr.Slider(1, MAX_STEPS, value=defaults.text2img_steps, step=1, precision=0, label="Steps",
                                  info=defaults.hint)
            guidance = gr.Slider(1, MAX_GUIDANCE, value=DEFAULT_GUIDANCE_SCALE, step=0.5, label="CFG scale",
                                 info="Classifier-free guidance: how strongly to follow the prompt; 1 turns it off.")
            with gr.Row():
                width = gr.Slider(MIN_SIDE, MAX_SIDE, value=side, step=SIDE_MULTIPLE, precision=0, label="Width")
                height = gr.Slider(MIN_SIDE, MAX_SIDE, value=side, step=SIDE_MULTIPLE, precision=0, label="Height")
            lora, lora_weight = lora_controls(studio)
            tiny, tiny_final = tiny_decoder_controls(studio)
            truncate = truncate_checkbox()
            with gr.Row():
                fast = gr.Button("Fast: LCM-LoRA, 4 steps", size="sm", scale=0)
                few_step_note = gr.Markdown()
            with gr.Row():
                num_images = gr.Slider(1, max_batch, value=1, step=1, precision=0, label="Number of images")
                preview_every = gr.Slider(1, 50, value=5, step=1, precision=0, label="Preview every k steps",
                                          info="Without a tiny decoder, approximated from the latents by a linear "
                                               "map.")
            seed, random_seed = seed_controls()
            generate, stop = run_buttons()
        with gr.Column(scale=2):
            gallery = output_gallery("Images", type="filepath", columns=2, height="auto")
            report = gr.Markdown()
            zip_download(studio, gallery)
            with gr.Accordion("Read parameters from a PNG", open=False):
                png = gr.Image(label="Drop a PNG made by this app (or another Stable Diffusion UI)", type="filepath",
                               image_mode=None, sources=["upload"], height=240, elem_id="read-parameters-png")
                read_report = gr.Markdown()
    how_it_works(HOW_IT_WORKS)

    @kept_in_history(studio, "text2img", images_at=0, text_at=1)
    @runs_on_gpu(studio, lambda model_name, prompt_text, negative_text, scheduler_name, step_count, cfg, image_width,
                 image_height, count, *_, **__: gpu_seconds(
        TEXT_TO_IMAGE, step_count, count, image_width * image_height // 64, passes=1 if cfg == 1 else 2))
    @reports_errors
    def generate_text2img(model_name, prompt_text, negative_text, scheduler_name, step_count, cfg, image_width,
                          image_height, count, every, seed_value, use_random_seed, lora_name="", lora_scale=1.0,
                          tiny_name="", tiny_final_decode=False, truncate_prompts=False, progress=gr.Progress()):
        """Generate images from a text prompt with a Stable Diffusion pipeline.

        Args:
            model_name: a text-to-image catalog model, a hub repo id (owner/name) or a local diffusers folder.
            prompt_text: what to draw; AUTOMATIC1111's weights work: (red:1.3), (red), [sky], \\( for a bracket.
            negative_text: what to steer away from (used when the CFG scale is above 1).
            scheduler_name: DPM++ 2M, Euler a, Euler, DDIM, PNDM, UniPC, or LCM and TCD (few-step LoRAs).
            step_count: denoising steps, 1-150.
            cfg: classifier-free guidance scale, 1-30 (1 turns it off).
            image_width: width in pixels, a multiple of 8 from 64 to 2048.
            image_height: height in pixels, a multiple of 8 from 64 to 2048.
            count: number of images.
            every: show a preview every this many steps.
            seed_value: seed of the first image, 0 to 2**32-1.
            use_random_seed: draw a random seed instead; the seed used is reported.
            lora_name: a LoRA trained on this model (empty: none).
            lora_scale: the LoRA's weight, 0-2 (0 gives exactly the model's own images).
            tiny_name: a tiny autoencoder (TAESD) of this model for the previews (empty: the linear latent map).
            tiny_final_decode: decode the final images with the tiny autoencoder too, instead of the VAE.
            truncate_prompts: cut prompts at the text encoder's context (77 tokens for CLIP) instead of encoding
                longer ones in chunks.
        """
        progress = ThrottledProgress(progress)
        request = TextToImageRequest(
            model=model_name,
            prompt=prompt_text,
            negative_prompt=negative_text,
            steps=whole_number(step_count, "Steps"),
            guidance_scale=number(cfg, "CFG scale"),
            width=whole_number(image_width, "Width"),
            height=whole_number(image_height, "Height"),
            num_images=whole_number(count, "Number of images"),
            seed=chosen_seed(seed_value, use_random_seed),
            scheduler=scheduler_name,
            lora=lora_name or None,
            lora_weight=number(lora_scale, "LoRA weight"),
            tiny_autoencoder=tiny_name or None,
            tiny_final_decode=bool(tiny_final_decode),
            truncate_long_prompts=bool(truncate_prompts),
        )
        progress(0, desc=tr("Loading model"))
        generation = studio.start(TextToImageRun, request, preview_every=whole_number(every, "Preview interval"))
        for step in generation:
            progress((step.index + 1, step.total), desc=tr("Denoising"), unit="steps")
            # Yielding every step lets Stop take effect after the current step.
            yield step.preview or gr.skip(), tr(f"Step {step.index + 1}/{step.total} · {generation.seconds:.1f} s")
        yield generation.images, finished_report(generation)

    def show_status(model_name):
        return model_status(studio, model_name)

    read_into = {"model": model, "prompt": prompt, "negative_prompt": negative_prompt, "scheduler": scheduler,
                 "steps": steps, "guidance_scale": guidance, "width": width, "height": height, "seed": seed}
    # After the message: older API clients unpack 11 values.
    read_lora = {"lora": lora, "lora_weight": lora_weight, "tiny_autoencoder": tiny, "tiny_final_decode": tiny_final,
                 "truncate_long_prompts": truncate}

    def read_parameters(path):
        """Read the generation settings from a PNG's parameters chunk (as written by this app or other SD UIs).

        Args:
            path: the PNG file.
        """
        if not path:
            raise error("Upload a PNG image to read its parameters.")
        try:
            fields, notes = request_fields_from_png(path)
        except ValueError as err:
            raise error(str(err)) from err
        fields["lora"] = fields.get("lora") or ""  # an image made without a LoRA clears the chooser
        fields.setdefault("tiny_final_decode", False)  # an image the VAE decoded
        fields.setdefault("truncate_long_prompts", False)  # long prompts in chunks
        if fields.get("tiny_autoencoder") not in (None, *studio.model_names(TINY_AUTOENCODER)):
            notes.append(f"VAE {fields.pop('tiny_autoencoder')!r} is not a tiny autoencoder listed here")
            fields["tiny_final_decode"] = False
        values = [fields.get(name, gr.skip()) for name in read_into]
        message = tr(f"Settings read from the image; not used: {'; '.join(map(tr, notes))}." if notes else
                     "Settings read from the image.")
        return [*values, False if "seed" in fields else gr.skip(), message,
                *[fields.get(name, gr.skip()) for name in read_lora]]

    def show_native_size(name):
        chosen_side = native_side(studio, name)
        return chosen_side, chosen_side

    model.change(show_status, model, status, api_visibility="private")
    wire_few_step(studio, fast, few_step_note, model, lora, scheduler, steps, guidance, lora_weight, tiny, tiny_final,
                  preview_every)
    # Only when the visitor picks a model: a model set by reading a PNG comes with that image's own size.
    model.input(show_native_size, model, [width, height], api_visibility="private")
    # The LoRA and the tiny decoder come last, so that API calls written before they existed still work.
    inputs = [model, prompt, negative_prompt, scheduler, steps, guidance, width, height, num_images, preview_every,
              seed, random_seed, lora, lora_weight, tiny, tiny_final, truncate]
    run_event = run_and_stop(studio, generate, stop, generate_text2img, [*inputs, visitor_id], [gallery, report], report,
                 api_name="generate_text2img")
    code_panel(studio, run_event, gallery, 'Text to image')
    sweep_panel(studio, "text2img", generate_text2img, inputs, SweepTab(
        {"Model": SweepInput(0, AxisKind("text")),
                   "Prompt": SweepInput(1, AxisKind("text"), search_replace=True),
                   "Sampler": SweepInput(3, AxisKind("text", tuple(TEXT_TO_IMAGE_SCHEDULERS))),
                   "Steps": SweepInput(4, AxisKind("int")),
                   "CFG scale": SweepInput(5, AxisKind("float")),
                   "LoRA weight": SweepInput(13, AxisKind("float")),
                   "Seed": SweepInput(10, AxisKind("int"))},
        count=8, seed=10, random_seed=11, images_at=0), visitor_id)
    png.upload(read_parameters, png, [*read_into.values(), random_seed, read_report, *read_lora.values()],
               api_name="read_parameters",
               concurrency_limit=None)
    if default_model and studio.catalog.get(default_model).available_offline():
        examples([[default_model, prompt_text, "", "DPM++ 2M", 25, 4, side, side, 4, 5, 42, False, "", 1.0, "", False,
                   False]
                  for prompt_text in ("red heart", "green apple", "grinning face", "blue circle")],
                 inputs, label="Examples (bundled model, offline)")
    elif default_model:
        examples([[default_model, "a watercolor painting of a lighthouse at dawn", "blurry, low quality", "DPM++ 2M",
                   25, DEFAULT_GUIDANCE_SCALE, 512, 512, 1, 5, 42, False, "", 1.0, "", False, False],
                  [default_model, "a corgi astronaut, studio photo", "", "Euler a", 30, 6, 512, 512, 1, 5, 7, False,
                   "", 1.0, "", False, False]],
                 inputs, label="Examples (the model downloads on first use)")
    return inputs



def finished_report(generation: TextToImageRun) -> str:
    request = generation.request
    lora = f", LoRA {request.lora} at {request.lora_weight:g}" if request.lora else ""
    decoder = ""
    if request.tiny_autoencoder:
        decoder = f", {'decoded' if request.tiny_final_decode else 'previews'} by {request.tiny_autoencoder}"
    lines = [f"Seed {request.seed} (image i uses seed + i) · {request.steps} {request.scheduler} steps, "
             f"CFG scale {request.guidance_scale:g}, {request.width}x{request.height}{lora}{decoder}, in "
             f"{generation.seconds:.1f} s"]
    if request.guidance_scale <= 1 and request.negative_prompt:
        lines.append("CFG scale 1 turns guidance off, so the negative prompt was not used.")
    lines += prompt_notes(generation)
    if any(generation.flagged):
        lines.append(f"**The model's safety checker blacked out {sum(generation.flagged)} image(s).**")
    return "\n\n".join(map(tr, lines))
