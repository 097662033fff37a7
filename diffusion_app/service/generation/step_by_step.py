"""Stable Diffusion taken apart: the text-to-image loop written out as diffusers' docs write it, keeping what
each stage made so that a learner can see it.

The stages are the pipeline's own: tokenize the prompt and the negative prompt, encode them with the text
encoder, draw the initial latents, then for each scheduler step run the UNet on both prompts, combine the two
noise predictions by classifier-free guidance and let the scheduler step the latents, and last decode them with
the VAE. Each stage does what `StableDiffusionPipeline.__call__` does with the same request (the same tokenizer
call, the same noise from the same CPU generator in the embeddings' dtype, the same step arguments), so the
final image is the Text to image tab's, pixel for pixel in float32 (tested).

The run keeps, per step, the scheduler's timestep and noise level and the size (root mean square) of the
unconditional, conditional and guided predictions, and decodes the latents at the steps asked for.
"""

from __future__ import annotations

import inspect
import time
from dataclasses import dataclass
from typing import Iterator

import torch
from PIL import Image

from ...catalog import TEXT_TO_IMAGE
from ...core.metadata import format_parameters, with_parameters
from ...core.portable_state import portable_state
from ...core.schedulers import TEXT_TO_IMAGE_SCHEDULERS, make_scheduler
from ..models.lora_adapters import apply_lora, pipeline_lock
from ..studio import Studio
from .prompt_tokens import PromptToken, prompt_tokens
from ...core.prompt_weights import prompt_words
from .weighted_prompts import needs_embeddings, weighted_embeddings
from .text2img import TextToImageRequest, text_to_image_fields

MAX_DECODED_STEPS = 12  # each decode costs about a UNet step; a row of them is what the tab shows


@dataclass(frozen=True)
class LoopStep:
    """What one pass of the denoising loop computed."""

    index: int  # 0-based position in the loop
    total: int  # the loop's length (PNDM adds a step)
    timestep: float  # the UNet's timestep input, out of the 1,000 it was trained on
    sigma: float  # the noise level: the noise's scale against the image's, sqrt((1 - alpha_bar) / alpha_bar)
    unconditional_rms: float | None  # the negative prompt's noise prediction; None without guidance
    conditional_rms: float  # the prompt's
    guided_rms: float  # their classifier-free guidance combination, which the scheduler steps with
    latents_rms: float  # the latents after the step
    decoded: Image.Image | None  # the latents after the step through the VAE, on the steps asked for


def rms(tensor: torch.Tensor) -> float:
    return tensor.float().pow(2).mean().sqrt().item()


def parse_decode_steps(text: str, total_steps: int) -> tuple[int, ...]:
    """'5, 10, 15' -> (5, 10, 15): the 1-based steps whose latents are decoded along the way."""
    if not isinstance(text, str):
        raise ValueError(f"Steps to decode must be text such as '5, 10', got {text!r}.")
    pieces = [piece.strip() for piece in text.replace(";", ",").split(",") if piece.strip()]
    if not all(piece.isdigit() for piece in pieces):
        raise ValueError(f"Steps to decode must be whole numbers separated by commas, got {text!r}.")
    steps = sorted({int(piece) for piece in pieces})
    if steps and not 1 <= steps[0] <= steps[-1] <= total_steps:
        raise ValueError(f"Steps to decode must be from 1 to {total_steps}, got {text!r}.")
    if len(steps) > MAX_DECODED_STEPS:
        raise ValueError(f"Decode at most {MAX_DECODED_STEPS} steps along the way, got {len(steps)}.")
    return tuple(steps)


class StepByStepRun:
    """One image of a text-to-image request, made stage by stage. Iterate it for a LoopStep per denoising step;
    then `images` holds the final image, `tokens` and `negative_tokens` the tokenizer's output, `embeddings_shape`
    the text encoder's, `latents_shape` the noise's, and `steps` every LoopStep."""

    def __init__(self, studio: Studio, request: TextToImageRequest, decode_steps: tuple[int, ...] = ()):
        self.request = request.validated(studio.settings.max_batch_size)
        if self.request.num_images != 1:
            raise ValueError("Step by step makes one image at a time.")
        if self.request.lora or self.request.tiny_autoencoder:
            raise ValueError("Step by step runs the model as it is: no LoRA and no tiny decoder.")
        studio.listed_or_added(self.request.model, TEXT_TO_IMAGE)
        self.studio = studio
        self.pipeline = studio.pipeline(self.request.model, TEXT_TO_IMAGE)  # shared: only its models are used
        if self.pipeline.unet.config.get("time_cond_proj_dim") is not None:
            raise ValueError(f"{self.request.model} embeds its guidance scale in the UNet (an LCM-distilled model); "
                             f"step by step writes out classifier-free guidance: choose another model.")
        self.scheduler = make_scheduler(self.request.scheduler, self.pipeline.scheduler.config,
                                        TEXT_TO_IMAGE_SCHEDULERS)
        for step in decode_steps:
            if step > self.request.steps:
                raise ValueError(f"Steps to decode must be from 1 to {self.request.steps}, got {step}.")
        self.decode_steps = decode_steps
        self._lock = pipeline_lock(self.pipeline)
        self.tokens: list[PromptToken] = []
        self.negative_tokens: list[PromptToken] = []
        self.embeddings_shape: tuple[int, ...] = ()
        self.latents_shape: tuple[int, ...] = ()
        self.init_noise_sigma = 1.0
        self.steps: list[LoopStep] = []
        self.images: list[Image.Image] | None = None
        self.flagged: list[bool] = []
        self.seconds = 0.0

    def __getstate__(self) -> dict:
        """The run as it comes back from a Ray replica: what it recorded, not its models or lock."""
        return portable_state(self, kept_here=("studio", "pipeline", "scheduler", "_lock"))

    @property
    def guided(self) -> bool:
        return self.request.guidance_scale > 1

    def __iter__(self) -> Iterator[LoopStep]:
        start = time.perf_counter()
        pipeline, request, scheduler = self.pipeline, self.request, self.scheduler
        device = pipeline._execution_device
        with self._lock:  # the tokenizer's settings are shared state
            self.tokens, self.negative_tokens = (prompt_tokens(pipeline.tokenizer, prompt_words(text))
                                                 for text in (request.prompt, request.negative_prompt))
            embeddings = self.encode_prompts(device)
        self.embeddings_shape = tuple(embeddings.shape)

        scheduler.set_timesteps(request.steps, device=device)
        generator = torch.Generator("cpu").manual_seed(request.seed)
        scale = pipeline.vae_scale_factor
        shape = (1, pipeline.unet.config.in_channels, request.height // scale, request.width // scale)
        latents = torch.randn(shape, generator=generator, dtype=embeddings.dtype).to(device)
        self.init_noise_sigma = float(scheduler.init_noise_sigma)
        latents = latents * scheduler.init_noise_sigma
        self.latents_shape = tuple(latents.shape)
        step_arguments = self.scheduler_step_arguments(generator)

        timesteps = scheduler.timesteps
        for index, timestep in enumerate(timesteps):
            model_input = torch.cat([latents] * 2) if self.guided else latents
            model_input = scheduler.scale_model_input(model_input, timestep)
            sigma = self.noise_level(index, timestep)
            with self._lock, torch.no_grad():  # another request may have left a LoRA active on the shared UNet
                apply_lora(self.studio, pipeline, None, 0)
                noise = pipeline.unet(model_input, timestep, encoder_hidden_states=embeddings, return_dict=False)[0]
            if self.guided:
                unconditional, conditional = noise.chunk(2)
                guided = unconditional + request.guidance_scale * (conditional - unconditional)
            else:
                unconditional, conditional, guided = None, noise, noise
            latents = scheduler.step(guided, timestep, latents, **step_arguments, return_dict=False)[0]
            decoded = self.decode(latents)[0] if index + 1 in self.decode_steps else None
            step = LoopStep(index, len(timesteps), float(timestep), sigma,
                            rms(unconditional) if unconditional is not None else None, rms(conditional),
                            rms(guided), rms(latents), decoded)
            self.steps.append(step)
            self.seconds = time.perf_counter() - start
            yield step

        images = self.decode(latents)
        parameters = format_parameters(text_to_image_fields(request, request.seed), prompt=request.prompt,
                                       negative_prompt=request.negative_prompt)  # what Text to image reads back
        self.images = [with_parameters(images[0], parameters)]
        self.seconds = time.perf_counter() - start

    def encode_prompts(self, device) -> torch.Tensor:
        """The negative prompt's embeddings (with guidance) and the prompt's, batched as the pipeline batches them;
        weighted or longer than the context, by compel as Text to image encodes them."""
        request, prompts = self.request, [self.request.prompt, self.request.negative_prompt]
        if needs_embeddings(self.pipeline.tokenizer, prompts, request.truncate_long_prompts):
            encoded = weighted_embeddings(self.pipeline, *prompts, truncate=request.truncate_long_prompts,
                                          guided=self.guided)
            embeddings = [encoded["negative_prompt_embeds"]] * self.guided + [encoded["prompt_embeds"]]
            return torch.cat(embeddings).to(device)
        prompt, negative_prompt = (prompt_words(text) for text in prompts)  # "(red:1)" is "red"
        embeddings = self.encode(prompt, device)
        if self.guided:  # the negative prompt first, as the pipeline batches them
            embeddings = torch.cat([self.encode(negative_prompt, device), embeddings])
        return embeddings

    def encode(self, text: str, device) -> torch.Tensor:
        """Tokenize to the text encoder's context (padding to it, cutting what is past it) and encode."""
        tokenizer, text_encoder = self.pipeline.tokenizer, self.pipeline.text_encoder
        ids = tokenizer(text, padding="max_length", max_length=tokenizer.model_max_length, truncation=True,
                        return_tensors="pt").input_ids.to(device)
        uses_mask = getattr(text_encoder.config, "use_attention_mask", False)
        mask = (ids != tokenizer.pad_token_id).long() if uses_mask else None
        with torch.no_grad():
            return text_encoder(ids, attention_mask=mask)[0].to(dtype=text_encoder.dtype, device=device)

    def scheduler_step_arguments(self, generator: torch.Generator) -> dict:
        """What the pipeline passes to scheduler.step beyond the prediction: eta 0 (DDIM's deterministic
        sampling), and the generator to the samplers that add fresh noise each step (Euler a)."""
        accepted = inspect.signature(self.scheduler.step).parameters
        return {name: value for name, value in (("eta", 0.0), ("generator", generator)) if name in accepted}

    def noise_level(self, index: int, timestep: torch.Tensor) -> float:
        """The scheduler's sigma where it keeps one per step (Euler, DPM++), else the same quantity from the
        training schedule's alpha_bar at this timestep (DDIM, PNDM)."""
        sigmas = getattr(self.scheduler, "sigmas", None)
        if sigmas is not None and len(sigmas) > index:
            return float(sigmas[index])
        alpha_bar = self.scheduler.alphas_cumprod[int(timestep)]
        return float(((1 - alpha_bar) / alpha_bar).sqrt())

    def decode(self, latents: torch.Tensor) -> list[Image.Image]:
        """The VAE decode of the latents, then the pipeline's safety check (models that have one) and its
        post-processing to pictures."""
        pipeline = self.pipeline
        with torch.no_grad():
            image = pipeline.vae.decode(latents / pipeline.vae.config.scaling_factor, return_dict=False)[0]
        image, flagged = pipeline.run_safety_checker(image, latents.device, latents.dtype)
        self.flagged = list(flagged or [])
        denormalize = [True] * image.shape[0] if flagged is None else [not is_flagged for is_flagged in flagged]
        return pipeline.image_processor.postprocess(image, output_type="pil", do_denormalize=denormalize)
