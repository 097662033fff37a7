"""Tab: Stable Diffusion step by step. One text-to-image run with every stage shown: the tokens, the text
embeddings, the initial latents, each step's timestep, noise level and noise predictions (plotted), the latents
decoded at chosen steps, and the final VAE decode, which is the Text to image tab's image."""

from __future__ import annotations

import gradio as gr
import pandas as pd

from ..catalog import TEXT_TO_IMAGE
from ..core.schedulers import TEXT_TO_IMAGE_SCHEDULERS
from ..hardware import first_click
from ..service.generation.prompt_tokens import PromptToken
from ..service.generation.step_by_step import LoopStep, StepByStepRun, parse_decode_steps
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

THE_LOOP = '''\
# 1. Tokenize: CLIP reads 77 tokens; the rest of a long prompt is cut.
ids = tokenizer(prompt, padding="max_length", max_length=tokenizer.model_max_length,
                truncation=True, return_tensors="pt").input_ids
negative_ids = tokenizer(negative_prompt, padding="max_length",
                         max_length=tokenizer.model_max_length, truncation=True, return_tensors="pt").input_ids

# 2. Encode: one embedding per token; the negative prompt first, as the pipeline batches them.
with torch.no_grad():
    embeddings = torch.cat([text_encoder(negative_ids)[0], text_encoder(ids)[0]])

# 3. Latents: noise at 1/8 of the image size, scaled to the scheduler's first noise level.
scheduler.set_timesteps(steps)
generator = torch.Generator("cpu").manual_seed(seed)
latents = torch.randn((1, unet.config.in_channels, height // 8, width // 8), generator=generator)
latents = latents * scheduler.init_noise_sigma

# 4. Denoise: predict the noise for both prompts, push away from the negative one, step.
for timestep in scheduler.timesteps:
    model_input = scheduler.scale_model_input(torch.cat([latents] * 2), timestep)
    with torch.no_grad():
        noise = unet(model_input, timestep, encoder_hidden_states=embeddings).sample
    unconditional, conditional = noise.chunk(2)
    guided = unconditional + guidance_scale * (conditional - unconditional)
    latents = scheduler.step(guided, timestep, latents).prev_sample

# 5. Decode: the VAE turns the latents into pixels in [-1, 1].
with torch.no_grad():
    image = vae.decode(latents / vae.config.scaling_factor).sample
image = (image / 2 + 0.5).clamp(0, 1)
'''

HOW_IT_WORKS = r"""
This is the loop inside `StableDiffusionPipeline`, written out (the code above). The tokenizer turns the prompt
into CLIP's 77 token ids; the text encoder turns them into one embedding per token. The latents start as noise
of 4 channels at 1/8 of the image's size. Each step the UNet predicts the noise twice, once for the negative
prompt ($\epsilon_u$) and once for the prompt ($\epsilon_c$), and classifier-free guidance extrapolates from one
to the other:

$$\hat\epsilon = \epsilon_u + w\,(\epsilon_c - \epsilon_u)$$

The scheduler removes that much noise for its timestep and noise level $\sigma$. The chart plots the size (root
mean square) of each prediction per step: with a CFG scale $w$ above 1 the guided prediction is larger than
either, by $w$ times their difference. At the end the VAE decodes the latents into pixels. The image is the one
the Text to image tab makes with the same settings, pixel for pixel.
"""
STAGE_COLUMNS = ["Step", "Timestep", "Sigma", "Negative prompt's noise (RMS)", "Prompt's noise (RMS)",
                 "Guided noise (RMS)", "Latents (RMS)"]


def token_rows(tokens: list[PromptToken]) -> list[list]:
    """The tokenizer's output as table rows: padding folded into one row, the cut pieces marked."""
    rows = [[str(token.index), token.id, token.text, tr(token.role)] for token in tokens if token.role != "padding"]
    padding = [token for token in tokens if token.role == "padding"]
    if padding:
        rows.insert(next(i for i, token in enumerate(tokens) if token.role == "padding"),
                    [f"{padding[0].index}-{padding[-1].index}", padding[0].id, "", tr(f"padding × {len(padding)}")])
    return rows


def step_rows(steps: list[LoopStep]) -> list[list]:
    return [[step.index + 1, round(step.timestep, 1), round(step.sigma, 4),
             None if step.unconditional_rms is None else round(step.unconditional_rms, 4),
             round(step.conditional_rms, 4), round(step.guided_rms, 4), round(step.latents_rms, 4)]
            for step in steps]


def norms_chart(steps: list[LoopStep]) -> pd.DataFrame:
    """Long format for the line plot: one row per step and prediction."""
    rows = [(step.index + 1, name, size) for step in steps
            for name, size in ((tr("negative prompt"), step.unconditional_rms), (tr("prompt"), step.conditional_rms),
                               (tr("guided"), step.guided_rms)) if size is not None]
    return pd.DataFrame(rows, columns=["Step", "Prediction", "RMS"])


def stages_text(run: StepByStepRun) -> str:
    """The shapes each stage made, in a line each."""
    words = sum(token.role == "word" for token in run.tokens)
    cut = sum(token.role == "cut" for token in run.tokens)
    lines = [f"**1. Tokenize**: {words} word pieces between the start and end tokens, padded to "
             f"{len([t for t in run.tokens if t.role != 'cut'])}."]
    if cut:
        lines.append(f"{cut} pieces past the encoder's context are cut: the model never reads them.")
    lines.append(f"**2. Encode**: text embeddings of shape {tuple(run.embeddings_shape)}"
                 + (" (negative prompt, prompt)." if run.guided else " (the prompt only: CFG scale 1 needs no "
                                                                        "negative prompt)."))
    lines.append(f"**3. Latents**: noise of shape {tuple(run.latents_shape)}, times the scheduler's initial "
                 f"sigma {run.init_noise_sigma:g}.")
    lines.append(f"**4. Denoise**: {len(run.steps)} steps of {run.request.scheduler}.")
    lines.append("**5. Decode**: the VAE turns the last latents into the image.")
    return "\n".join(f"- {tr(line)}" for line in lines)


def default_decode_steps(steps: int) -> str:
    """A quarter, a half and three quarters of the way: '5, 10, 15' for 20 steps."""
    return ", ".join(str(step) for step in sorted({max(1, steps * quarter // 4) for quarter in (1, 2, 3)}))


def build_tab(studio: Studio) -> None:
    defaults = first_click(studio.settings.device)
    with gr.Row():
        with gr.Column(scale=1):
            model = model_dropdown(studio, TEXT_TO_IMAGE, value=studio.catalog.default(TEXT_TO_IMAGE),
                                   allow_custom_value=not studio.settings.public,
                                   info="A Stable Diffusion model, run without its pipeline's call.")
            prompt = gr.Textbox(value="red apple", label="Prompt", lines=2)
            token_counter(studio, model, prompt)
            negative_prompt = gr.Textbox(label="Negative prompt")
            token_counter(studio, model, negative_prompt)
            with gr.Row():
                scheduler = gr.Dropdown([name for name in TEXT_TO_IMAGE_SCHEDULERS if name not in ("LCM", "TCD")],
                                        value="DPM++ 2M", label="Sampler")
                steps = gr.Slider(1, MAX_STEPS, value=defaults.text2img_steps, step=1, precision=0, label="Steps")
            guidance = gr.Slider(1, MAX_GUIDANCE, value=DEFAULT_GUIDANCE_SCALE, step=0.5, label="CFG scale")
            decode_at = gr.Textbox(value=default_decode_steps(defaults.text2img_steps), label="Decode latents at steps",
                                   info="Step numbers, separated by commas: the VAE shows the latents there.")
            seed, random_seed = seed_controls()
            generate, stop = run_buttons()
        with gr.Column(scale=2):
            report = gr.Markdown()
            with gr.Row():
                image = gr.Image(label="Image", type="filepath", format="png", interactive=False, height=200,
                                 elem_classes="pixelated", scale=1)  # a PNG: it carries its parameters
                decoded = gr.Gallery(label="Latents decoded along the way", columns=4, height=200,
                                     object_fit="contain", fit_columns=False, scale=2, elem_classes="pixelated")
            norms = gr.LinePlot(x="Step", y="RMS", color="Prediction", label="Noise predictions per step",
                                height=220)
            stages = gr.Markdown()
            tokens = gr.Dataframe(headers=["Position", "Token id", "Token", "Role"], label="Prompt tokens",
                                  interactive=False, max_height=240)
            loop_table = gr.Dataframe(headers=STAGE_COLUMNS, label="Each step", interactive=False, max_height=300)
    with gr.Accordion("The loop this runs", open=False):
        gr.Code(THE_LOOP, language="python", interactive=False, label="Python")
    how_it_works(HOW_IT_WORKS)

    @runs_on_gpu(studio, lambda model_name, prompt_text, negative_text, scheduler_name, step_count, cfg, *_, **__:
                 gpu_seconds(TEXT_TO_IMAGE, step_count, 1, native_side(studio, model_name) ** 2 // 64,
                             passes=1 if cfg == 1 else 2))
    @reports_errors
    def generate_step_by_step(model_name, prompt_text, negative_text, scheduler_name, step_count, cfg, decode_text,
                              seed_value, use_random_seed, progress=gr.Progress()):
        """Generate one image with the Stable Diffusion loop written out, and what each of its stages made.

        Args:
            model_name: a text-to-image catalog model, a hub repo id (owner/name) or a local diffusers folder.
            prompt_text: what to draw.
            negative_text: what to steer away from (used when the CFG scale is above 1).
            scheduler_name: DPM++ 2M, Euler a, Euler, DDIM, PNDM or UniPC.
            step_count: denoising steps, 1-150.
            cfg: classifier-free guidance scale, 1-30 (1 turns it off).
            decode_text: the steps whose latents are decoded along the way, such as "5, 10, 15" (at most 12).
            seed_value: seed of the image, 0 to 2**32-1.
            use_random_seed: draw a random seed instead; the seed used is reported.
        """
        progress = ThrottledProgress(progress)
        side = native_side(studio, model_name)
        step_total = whole_number(step_count, "Steps")
        request = TextToImageRequest(model=model_name, prompt=prompt_text, negative_prompt=negative_text,
                                     steps=step_total, guidance_scale=number(cfg, "CFG scale"), width=side,
                                     height=side, seed=chosen_seed(seed_value, use_random_seed),
                                     scheduler=scheduler_name)
        progress(0, desc=tr("Loading model"))
        run = studio.start(StepByStepRun, request, decode_steps=parse_decode_steps(decode_text, step_total))
        for step in run:
            progress((step.index + 1, step.total), desc=tr("Denoising"), unit="steps")
            yield gr.skip(), tr(f"Step {step.index + 1}/{step.total} · {run.seconds:.1f} s"), *[gr.skip()] * 5
        yield (run.images[0],
               tr(f"Seed {run.request.seed} · {step_total} {request.scheduler} steps, CFG scale "
                  f"{request.guidance_scale:g}, {side}x{side}, in {run.seconds:.1f} s"),
               stages_text(run), token_rows(run.tokens), norms_chart(run.steps), step_rows(run.steps),
               [(step.decoded, tr(f"Step {step.index + 1}")) for step in run.steps if step.decoded is not None])

    inputs = [model, prompt, negative_prompt, scheduler, steps, guidance, decode_at, seed, random_seed]
    run_event = run_and_stop(studio, generate, stop, generate_step_by_step, inputs,
                             [image, report, stages, tokens, norms, loop_table, decoded], report,
                             api_name="generate_step_by_step")
    code_panel(studio, run_event, image, "Step by step")
