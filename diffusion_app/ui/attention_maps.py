"""Tab: where each prompt word looked. One text-to-image run with its cross-attention maps (DAAM), shown as heat
over the image per token, with choosers for the words, the UNet levels and the steps read."""

from __future__ import annotations

import gradio as gr
import numpy as np
from PIL import Image

from ..catalog import TEXT_TO_IMAGE
from ..core.schedulers import TEXT_TO_IMAGE_SCHEDULERS
from ..hardware import first_click
from ..service.generation.attention_maps import AttentionMapRun
from ..service.generation.prompt_tokens import PromptToken
from ..service.generation.text2img import DEFAULT_GUIDANCE_SCALE, MAX_GUIDANCE, MAX_STEPS, TextToImageRequest
from ..service.gpu_time import gpu_seconds
from ..service.studio import Studio
from .code_panel import code_panel
from .common import chosen_seed, how_it_works, model_dropdown, number, reports_errors, run_buttons, runs_on_gpu, \
    seed_controls, whole_number
from .i18n import tr
from .outputs import ThrottledProgress, run_and_stop
from .text2img import native_side
from .token_counter import token_counter

HOW_IT_WORKS = r"""
Each cross-attention layer of the UNet lets every latent pixel $i$ weigh the prompt's 77 token embeddings $k_j$:

$$A_{ij} = \mathrm{softmax}_j\!\left(\frac{q_i \cdot k_j}{\sqrt{d}}\right)$$

Column $j$ of $A$ is where token $j$ acted in that layer. DAAM (Tang et al. 2022) averages these columns over the
heads, upsamples them to the latent's size, and adds them up over the layers and the chosen steps: one heat map per
token. The UNet attends at several resolutions (its levels). Their maps need not agree: on the bundled emoji-t2i
the finest level puts an object word on the object, while the coarser 8x8 level puts it on the background, so
summing every level, as DAAM does, can hide the object. Choose the levels to see each alone. The start token
takes most of every pixel's attention and says little; padding tokens fill the prompt up to 77 and are not words.
Recording the maps does not change the image: the layers compute their output as before.
"""
HEAT_COLOURS = np.array([[48, 18, 59], [65, 105, 225], [34, 193, 195], [253, 231, 37], [220, 50, 32]], float)
HEAT_STOPS = np.linspace(0, 1, len(HEAT_COLOURS))
SHOWN_SIDE = 256  # small images are enlarged to about this many pixels, so that a 16x16 map is legible


def heat_overlay(image: Image.Image, heat: np.ndarray) -> Image.Image:
    """The image with the heat map laid over it: cold places show the image, hot ones the ramp's colour."""
    colours = np.stack([np.interp(heat, HEAT_STOPS, HEAT_COLOURS[:, channel]) for channel in range(3)], axis=-1)
    weight = 0.25 + 0.55 * heat[..., None]
    picture = np.asarray(image.convert("RGB").resize(heat.shape[::-1], Image.Resampling.NEAREST), float)
    return Image.fromarray(np.round(picture * (1 - weight) + colours * weight).astype(np.uint8))


def token_label(token: PromptToken) -> str:
    """'3: apple' for the text encoder's position 3; CLIP's pieces end a word with </w>."""
    return f"{token.index}: {token.text.removesuffix('</w>')}"


def shown_size(image: Image.Image) -> tuple[int, int]:
    """(height, width) enlarged by the whole factor that brings a small image to about SHOWN_SIDE."""
    factor = max(1, SHOWN_SIDE // max(image.size))
    return image.height * factor, image.width * factor


def overlays(result: dict | None, labels: list[str], levels: list[str]) -> list[tuple[Image.Image, str]]:
    """The chosen tokens' heat maps at the chosen levels, over the run's image."""
    if not result:
        return []
    if not levels:
        raise gr.Error(tr("Choose at least one UNet level."))
    image, maps = result["image"], {token_label(map_.token): map_ for map_ in result["maps"]}
    size = shown_size(image)
    return [(heat_overlay(image, maps[label].heat(levels, size)), label) for label in labels if label in maps]


def token_notes(tokens: list[PromptToken]) -> str:
    """What the tokens that are not the prompt's words are, and what the encoder never read."""
    padding = sum(token.role == "padding" for token in tokens)
    cut = " ".join(token.text.removesuffix("</w>") for token in tokens if token.role == "cut")
    lines = [f"Tokens 0 and {next(t.index for t in tokens if t.role == 'end')} are the text encoder's start and "
             f"end tokens, not words of the prompt."]
    if padding:
        lines.append(f"{padding} padding tokens fill the prompt up to the encoder's context; they are not shown.")
    if cut:
        lines.append(f"**Past the encoder's context, never read**: “{cut}”.")
    return "\n\n".join(map(tr, lines))


def build_tab(studio: Studio) -> None:
    defaults = first_click(studio.settings.device)
    default_model = studio.catalog.default(TEXT_TO_IMAGE)
    with gr.Row():
        with gr.Column(scale=1):
            model = model_dropdown(studio, TEXT_TO_IMAGE, value=default_model,
                                   allow_custom_value=not studio.settings.public,
                                   info="A Stable Diffusion model: its UNet's cross-attention is what is shown.")
            prompt = gr.Textbox(value="red apple", label="Prompt", lines=2)
            token_counter(studio, model, prompt)
            negative_prompt = gr.Textbox(label="Negative prompt", info="Its maps are not shown.")
            token_counter(studio, model, negative_prompt)
            with gr.Row():
                scheduler = gr.Dropdown(list(TEXT_TO_IMAGE_SCHEDULERS), value="DPM++ 2M", label="Sampler")
                steps = gr.Slider(1, MAX_STEPS, value=defaults.text2img_steps, step=1, precision=0, label="Steps")
            guidance = gr.Slider(1, MAX_GUIDANCE, value=DEFAULT_GUIDANCE_SCALE, step=0.5, label="CFG scale")
            with gr.Row():
                first_step = gr.Number(value=1, precision=0, minimum=1, label="Maps from step",
                                       info="Early steps lay out the image; late ones add detail.")
                last_step = gr.Number(value=0, precision=0, minimum=0, label="to step", info="0: the last step.")
            seed, random_seed = seed_controls()
            generate, stop = run_buttons()
        with gr.Column(scale=2):
            image = gr.Image(label="Image", type="filepath", format="png", interactive=False, height=256,
                             elem_classes="pixelated")  # a PNG: it carries the parameters Show the code reads
            report = gr.Markdown()
            with gr.Row():
                words = gr.Dropdown([], multiselect=True, label="Tokens", info="The prompt's tokens, by position.")
                levels = gr.CheckboxGroup([], label="UNet levels", info="The finest level first; summed if several.")
            heat_maps = gr.Gallery(label="Attention per token", columns=4, height="auto", object_fit="contain",
                                   fit_columns=False)
            notes = gr.Markdown()
    how_it_works(HOW_IT_WORKS)
    result = gr.State()

    @runs_on_gpu(studio, lambda model_name, prompt_text, negative_text, scheduler_name, step_count, cfg, *_, **__:
                 gpu_seconds(TEXT_TO_IMAGE, step_count, 1, native_side(studio, model_name) ** 2 // 64,
                             passes=1 if cfg == 1 else 2))
    @reports_errors
    def generate_attention_maps(model_name, prompt_text, negative_text, scheduler_name, step_count, cfg, first,
                                last, seed_value, use_random_seed, progress=gr.Progress()):
        """Generate one image from a prompt and the cross-attention map of each of its tokens (DAAM).

        Args:
            model_name: a text-to-image catalog model, a hub repo id (owner/name) or a local diffusers folder.
            prompt_text: what to draw; each of its tokens gets a map.
            negative_text: what to steer away from (used when the CFG scale is above 1).
            scheduler_name: DPM++ 2M, Euler a, Euler, DDIM, PNDM, UniPC, or LCM and TCD (few-step LoRAs).
            step_count: denoising steps, 1-150.
            cfg: classifier-free guidance scale, 1-30 (1 turns it off).
            first: the first step whose attention is read, from 1.
            last: the last step whose attention is read (0: the last step).
            seed_value: seed of the image, 0 to 2**32-1.
            use_random_seed: draw a random seed instead; the seed used is reported.
        """
        progress = ThrottledProgress(progress)
        side = native_side(studio, model_name)
        request = TextToImageRequest(model=model_name, prompt=prompt_text, negative_prompt=negative_text,
                                     steps=whole_number(step_count, "Steps"), guidance_scale=number(cfg, "CFG scale"),
                                     width=side, height=side, seed=chosen_seed(seed_value, use_random_seed),
                                     scheduler=scheduler_name)
        progress(0, desc=tr("Loading model"))
        first_step_read, last_step_read = whole_number(first, "First step"), whole_number(last, "Last step")
        run = studio.start(AttentionMapRun, request, first_step=first_step_read, last_step=last_step_read)
        for step in run:
            progress((step.index + 1, step.total), desc=tr("Denoising"), unit="steps")
            yield gr.skip(), tr(f"Step {step.index + 1}/{step.total} · {run.seconds:.1f} s"), *[gr.skip()] * 5
        finished = {"image": run.images[0], "maps": run.maps}
        labels = [token_label(map_.token) for map_ in run.maps if map_.token.role != "padding"]
        chosen = [token_label(map_.token) for map_ in run.maps if map_.token.role == "word"]
        yield (run.images[0],
               tr(f"Seed {run.request.seed} · {request.steps} {request.scheduler} steps, CFG scale "
                  f"{request.guidance_scale:g}, {side}x{side}, attention read at steps "
                  f"{first_step_read}-{last_step_read or request.steps}, in {run.seconds:.1f} s"),
               gr.Dropdown(choices=labels, value=chosen), gr.CheckboxGroup(choices=run.levels, value=run.levels[:1]),
               overlays(finished, chosen, run.levels[:1]), token_notes(run.tokens), finished)

    def show_overlays(kept, labels, chosen_levels):
        return overlays(kept, labels or [], chosen_levels or [])

    inputs = [model, prompt, negative_prompt, scheduler, steps, guidance, first_step, last_step, seed, random_seed]
    run_event = run_and_stop(studio, generate, stop, generate_attention_maps, inputs,
                             [image, report, words, levels, heat_maps, notes, result], report,
                             api_name="generate_attention_maps")
    code_panel(studio, run_event, image, "Attention maps")
    for chooser in (words, levels):
        chooser.input(show_overlays, [result, words, levels], heat_maps, api_visibility="private",
                      concurrency_limit=None)
