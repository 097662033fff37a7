"""Tab: inpainting and outpainting. Paint over part of an image and redraw only that part, with a pixel model
(RePaint, or the plain baseline beside it) or a Stable Diffusion model with a prompt; or widen the canvas and
fill the new border."""

from __future__ import annotations

import gradio as gr
from PIL import Image, ImageChops

from ..catalog import TEXT_TO_IMAGE, UNCONDITIONAL
from ..core.denoising import to_pil
from ..core.schedulers import TEXT_TO_IMAGE_SCHEDULERS, UNCONDITIONAL_SCHEDULERS
from ..hardware import first_click
from ..service.generation.inpaint_canvas import MAX_EXTENSION, MAX_MASK_BLUR, Outpaint, checked_canvas
from ..service.generation.inpainting import INPAINT_METHODS, MAX_MASK_PADDING, REPAINT, inpainting_run
from ..service.generation.sampling import MAX_STEPS
from ..service.generation.sweep import AxisKind
from ..service.generation.text2img import DEFAULT_GUIDANCE_SCALE, TextToImageRequest
from ..service.gpu_time import gpu_seconds
from .before_after import before_after_slider, show_before_after
from .code_panel import canvas_and_mask, code_panel
from .common import (EXAMPLES, chosen_seed, how_it_works, number, reports_errors, run_buttons, runs_on_gpu,
                     sampling_request, seed_controls, whole_number, zip_download)
from .i18n import tr
from .outputs import ThrottledProgress, output_gallery, run_and_stop
from .prompt_options import prompt_notes, truncate_checkbox
from .remember import kept_in_history
from .text2img import native_side
from .sweep import SweepInput, SweepTab, sweep_panel
from .token_counter import token_counter

HOW_IT_WORKS = r"""
Inpainting samples only where the mask is white and keeps the rest. With a pixel model, every step joins the
known part $x^{known}_{t-1} = \sqrt{\bar\alpha_{t-1}}\,x_0 + \sqrt{1-\bar\alpha_{t-1}}\,\epsilon$ with the model's
step for the unknown part: $x_{t-1} = m \odot x^{unknown}_{t-1} + (1-m) \odot x^{known}_{t-1}$. Done once per step
(**Replace the known part**), the model never sees how the two must join, and the seam shows. **RePaint**
(Lugmayr et al. 2022) goes back up the chain every *jump length* steps, adding the noise again, and denoises
once more, *resampling* times: the parts get more steps to agree. Stable Diffusion models use diffusers'
inpainting pipeline in latent space; the input is laid back over the result outside the blurred mask.
**Outpainting** widens the canvas and inpaints the new border.
"""
WHOLE_PICTURE, ONLY_MASKED = "Whole picture", "Only masked"
INPAINT_AREAS = (WHOLE_PICTURE, ONLY_MASKED)
SAMPLERS = list(dict.fromkeys([*UNCONDITIONAL_SCHEDULERS, *TEXT_TO_IMAGE_SCHEDULERS]))


def picture_and_mask(editor: dict | None, uploaded_mask: Image.Image | None) -> tuple[Image.Image | None, Image.Image]:
    """The editor's picture and the mask: the strokes painted on its layers (where they are opaque), or, when
    nothing is painted, the uploaded mask (white redraws; the tab starts with one, so the first click draws)."""
    picture = (editor or {}).get("background")
    painted = None
    for layer in (editor or {}).get("layers") or []:
        alpha = layer.convert("RGBA").getchannel("A")
        painted = alpha if painted is None else ImageChops.lighter(painted, alpha)
    if uploaded_mask is not None and (painted is None or not painted.getbbox()):
        return picture, uploaded_mask
    return picture, painted


def mask_padding(area_name: str, padding_pixels) -> int | None:
    """The run's mask_padding: None for the whole picture, else the padding in pixels (Gradio has checked the
    area is one of the two)."""
    return whole_number(padding_pixels, "Only masked padding") if area_name == ONLY_MASKED else None


def latent_size(studio, model_name: str, canvas: Image.Image) -> tuple[int, int]:
    """The canvas scaled so its longer side is the model's native side, in multiples of 8."""
    scale = native_side(studio, model_name) / max(canvas.size)
    return tuple(max(8, round(side * scale / 8) * 8) for side in canvas.size)


def build_tab(studio, visitor_id: gr.BrowserState) -> list:
    max_batch = studio.settings.max_batch_size
    defaults = first_click(studio.settings.device)
    models = studio.model_names(UNCONDITIONAL) + studio.model_names(TEXT_TO_IMAGE)
    with gr.Row():
        with gr.Column(scale=1):
            model = gr.Dropdown(
                models, value=studio.catalog.default(UNCONDITIONAL), label="Model",
                info="An unconditional model (RePaint in pixels) or a text-to-image one (with a prompt).")
            editor = gr.ImageEditor(value={"background": str(EXAMPLES / "grinning_face.png"), "layers": [],
                                           "composite": None},
                                    label="Image: paint the part to redraw", type="pil", image_mode="RGBA",
                                    sources=["upload", "clipboard"], layers=False, transforms=(),
                                    brush=gr.Brush(colors=["#ffffff"], color_mode="fixed", default_size=4),
                                    eraser=gr.Eraser(default_size=4), height=320)
            uploaded_mask = gr.Image(str(EXAMPLES / "grinning_face_mask.png"),  # the first click redraws the middle
                                     label="Or upload a mask (white redraws; painting wins)", type="pil",
                                     image_mode="L", sources=["upload", "clipboard"], height=120,
                                     elem_classes="pixelated")
            with gr.Row():
                method = gr.Radio(list(INPAINT_METHODS), value=REPAINT, label="Method (pixel models)")
                jump_length = gr.Slider(1, 50, value=5, step=1, precision=0, label="Jump length",
                                        info="RePaint goes back up the chain every this many steps.")
                resampling = gr.Slider(1, 10, value=3, step=1, precision=0, label="Resampling",
                                       info="How many times RePaint goes back each time.")
            prompt = gr.Textbox(label="Prompt (text-to-image models)", lines=2)
            token_counter(studio, model, prompt)
            negative_prompt = gr.Textbox(label="Negative prompt (text-to-image models)")
            token_counter(studio, model, negative_prompt)
            truncate = truncate_checkbox()
            with gr.Row():
                guidance = gr.Slider(1, 30, value=DEFAULT_GUIDANCE_SCALE, step=0.5,
                                     label="CFG scale (text-to-image models)")
                strength = gr.Slider(0.05, 1, value=1, step=0.05, label="Strength (text-to-image models)",
                                     info="1 redraws the masked part from noise; less keeps some of it.")
                mask_blur = gr.Slider(0, MAX_MASK_BLUR, value=4, step=1, label="Mask blur (text-to-image models)",
                                      info="Pixels over which the redrawn part fades into the kept one.")
            with gr.Row():
                area = gr.Radio(INPAINT_AREAS, value=WHOLE_PICTURE, label="Inpaint area (text-to-image models)",
                                info="Only masked redraws the mask's box, with the padding around it, at the "
                                     "model's full size: more detail, and the prompt counts for more.")
                padding = gr.Slider(0, MAX_MASK_PADDING, value=8, step=1, precision=0, label="Only masked padding",
                                    info="Pixels of the picture around the mask that the model sees.")
            with gr.Accordion("Outpainting: widen the canvas", open=False):
                with gr.Row():
                    left, right, up, down = (gr.Number(0, minimum=0, maximum=MAX_EXTENSION, precision=0,
                                                       label=f"{side} (pixels)")
                                             for side in ("Left", "Right", "Up", "Down"))
            with gr.Row():
                sampler = gr.Dropdown(SAMPLERS, value="DDPM", label="Sampler",
                                      info="DDPM or DDIM for the baseline; any for text to image. RePaint has its own.")
                steps = gr.Slider(1, MAX_STEPS, value=defaults.image_to_image_steps, step=1, precision=0, label="Steps")
            num_images = gr.Slider(1, max_batch, value=min(defaults.num_images, max_batch), step=1, precision=0,
                                   label="Number of images", info=defaults.hint)
            seed, random_seed = seed_controls()
            generate, stop = run_buttons()
        with gr.Column(scale=2):
            canvas_view = output_gallery("The canvas and its mask (white is redrawn)", columns=2)
            gallery = output_gallery("Results", type="filepath", columns=4)
            compared = before_after_slider("Before and after (the canvas and the first result)")
            report = gr.Markdown()
            zip_download(studio, gallery)
    how_it_works(HOW_IT_WORKS)

    def gpu_estimate(model_name, editor_value, mask_value, method_name, jump, resample, prompt_text, negative_text,
                     cfg, strength_value, blur, area_name, padding_pixels, left_pixels, right_pixels, up_pixels,
                     down_pixels, sampler_name, step_count, count, *_, **__):
        """RePaint runs the UNet about `resampling` times per step."""
        kind = studio.catalog.get(model_name).kind
        passes = resample if method_name == REPAINT and kind != TEXT_TO_IMAGE else 1
        return gpu_seconds(kind, step_count * passes, count, studio.sample_pixels(model_name))

    @kept_in_history(studio, "inpaint", images_at=1, text_at=6)
    @runs_on_gpu(studio, gpu_estimate)
    @reports_errors
    def generate_inpaint(model_name, editor_value, mask_value, method_name, jump, resample, prompt_text, negative_text,
                         cfg, strength_value, blur, area_name, padding_pixels, left_pixels, right_pixels, up_pixels,
                         down_pixels, sampler_name, step_count, count, seed_value, use_random_seed,
                         truncate_prompts=False, progress=gr.Progress()):
        """Redraw the white part of a mask and keep the rest; widen the canvas first to outpaint.

        Args:
            model_name: an unconditional or text-to-image catalog model.
            editor_value: the image editor's value: the picture as background, the painted mask as a layer.
            mask_value: an uploaded mask, white where to redraw; used when nothing is painted.
            method_name: RePaint or "Replace the known part" (pixel models).
            jump: RePaint's jump length, 1-50.
            resample: RePaint's resampling count, 1-10.
            prompt_text: what to draw in the mask (text-to-image models).
            negative_text: what to steer away from (text-to-image models).
            cfg: classifier-free guidance scale, 1-30 (text-to-image models).
            strength_value: 0.05-1; 1 redraws the masked part from noise (text-to-image models).
            blur: mask blur in pixels, 0-64 (text-to-image models).
            area_name: "Whole picture", or "Only masked": the mask's box and its padding redrawn at the model's
                size and pasted back (text-to-image models).
            padding_pixels: "Only masked" padding in pixels, 0-256.
            left_pixels: pixels to add on the left (outpainting), 0-512; likewise the next three.
            right_pixels: pixels to add on the right.
            up_pixels: pixels to add at the top.
            down_pixels: pixels to add at the bottom.
            sampler_name: DDPM or DDIM (the pixel baseline), or a Stable Diffusion sampler.
            step_count: denoising steps.
            count: number of images.
            seed_value: seed of the first image, 0 to 2**32-1.
            use_random_seed: draw a random seed instead; the seed used is reported.
            truncate_prompts: cut prompts at the text encoder's context instead of encoding longer ones in chunks
                (text-to-image models).
        """
        progress = ThrottledProgress(progress)
        picture, mask = picture_and_mask(editor_value, mask_value)
        outpaint = Outpaint(*(whole_number(pixels or 0, "Outpainting") for pixels in
                              (left_pixels, right_pixels, up_pixels, down_pixels)))
        canvas, mask = checked_canvas(picture, mask, outpaint)
        yield [canvas, mask], gr.skip(), gr.skip()
        if studio.catalog.get(model_name).kind == TEXT_TO_IMAGE:
            width, height = latent_size(studio, model_name, canvas)
            request = TextToImageRequest(model_name, prompt_text, negative_text, whole_number(step_count, "Steps"),
                                         number(cfg, "CFG scale"), width, height,
                                         whole_number(count, "Number of images"),
                                         chosen_seed(seed_value, use_random_seed), sampler_name,
                                         truncate_long_prompts=bool(truncate_prompts))
            run = studio.start(inpainting_run, request, canvas, mask, strength=number(strength_value, "Strength"),
                               mask_blur=number(blur, "Mask blur"),
                               mask_padding=mask_padding(area_name, padding_pixels), preview_every=5)
            for step in run:
                progress((step.index + 1, step.total), desc=tr("Denoising"), unit="steps")
                yield gr.skip(), step.preview or gr.skip(), tr(f"Step {step.index + 1}/{step.total}")
            lines = [f"Seed {run.request.seed} · inpainted at {width}x{height} in {run.seconds:.1f} s",
                     *prompt_notes(run)]
            yield [canvas, mask], run.images, "\n\n".join(map(tr, lines))
            return
        request = sampling_request(model_name, count, step_count, seed_value, use_random_seed, scheduler=sampler_name)
        run = studio.start(inpainting_run, request, canvas, mask, method=method_name, jump_length=jump,
                           resampling=resample)
        for step in run:
            progress((step.index + 1, step.total), desc=tr("Denoising"), unit="steps")
            yield gr.skip(), to_pil(step.pred_original), tr(f"Step {step.index + 1}/{step.total}")
        yield [canvas, mask], run.images(), tr(f"Seed {run.request.seed} · {method_name}: {step.total} model steps in "
                                          f"{run.seconds:.1f} s")

    inputs = [model, editor, uploaded_mask, method, jump_length, resampling, prompt, negative_prompt, guidance,
              strength, mask_blur, area, padding, left, right, up, down, sampler, steps, num_images, seed, random_seed,
              truncate]
    run_event = run_and_stop(studio, generate, stop, generate_inpaint, [*inputs, visitor_id],
                             [canvas_view, gallery, report], report, api_name="generate_inpaint")
    show_before_after(run_event, canvas_view, gallery, compared)
    code_panel(studio, run_event, gallery, "Inpaint", start=canvas_view, start_files=canvas_and_mask)
    sweep_panel(studio, "inpaint", generate_inpaint, inputs, SweepTab(
        {"Model": SweepInput(0, AxisKind("text")),
         "Method": SweepInput(3, AxisKind("text", INPAINT_METHODS)),
         "Jump length": SweepInput(4, AxisKind("int")),
         "Resampling": SweepInput(5, AxisKind("int")),
         "Prompt": SweepInput(6, AxisKind("text"), search_replace=True),
         "Strength": SweepInput(9, AxisKind("float")),
         "Only masked padding": SweepInput(12, AxisKind("int")),
         "Steps": SweepInput(18, AxisKind("int")),
         "Seed": SweepInput(20, AxisKind("int"))},
        count=19, seed=20, random_seed=21, images_at=1), visitor_id)
    return inputs
