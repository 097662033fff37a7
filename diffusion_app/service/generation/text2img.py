"""Stable Diffusion text-to-image: the pipeline's own call per request, with a fresh scheduler, previews and Stop.

The cached pipeline's models are shared. A call keeps state on the pipeline object (the scheduler's
timesteps, the guidance scale, the interrupt flag), so each request calls its own shallow copy of that
object, holding a scheduler built for the request. The shared models keep state too: the active LoRA
adapter and its weight, and a fast tokenizer's padding and truncation settings. So requests for one model
run their calls one at a time, each with its own adapter (lora_adapters.py). The call runs in a worker
thread; its `callback_on_step_end` hands every step, and every k-th step a cheap preview, to the caller
through a queue, and ends the call as soon as the caller stops listening (Stop).
"""

from __future__ import annotations

import contextlib
import copy
import logging
import queue
import secrets
import threading
import time
from dataclasses import dataclass, replace
from typing import Iterator

import torch
from diffusers import DiffusionPipeline
from PIL import Image

from ...catalog import TEXT_TO_IMAGE
from ...core.denoising import to_pil
from ...core.metadata import format_parameters, with_parameters
from ...core.portable_state import portable_state
from .sampling import MAX_SEED, image_seeds, is_number_in, require_int
from ...core.schedulers import TEXT_TO_IMAGE_SCHEDULERS, make_scheduler
from ..models.lora_adapters import MAX_LORA_WEIGHT, apply_lora, check_lora, pipeline_lock
from ..models.tiny_autoencoders import check_tiny_autoencoder, tiny_autoencoder, tiny_decode
from ..studio import Studio
from ...core.prompt_weights import prompt_words
from .weighted_prompts import needs_embeddings, prompt_chunks, weighted_embeddings

logger = logging.getLogger(__name__)

MAX_STEPS = 150
MAX_GUIDANCE = 30
DEFAULT_GUIDANCE_SCALE = 7.5  # the Text to image tab's CFG scale, and the one benchmarks/bench_quality.py gates
SIDE_MULTIPLE, MIN_SIDE, MAX_SIDE = 8, 64, 2048

# Stable Diffusion's 4 latent channels -> RGB in about [-1, 1]: a linear fit of what the VAE decoder
# makes of them, cheap enough to run every few steps where a decode would cost as much as a step.
LATENT_RGB_FACTORS = torch.tensor([
    [0.298, 0.207, 0.208],
    [0.187, 0.286, 0.173],
    [-0.158, 0.189, 0.264],
    [-0.184, -0.271, -0.473],
])


@dataclass(frozen=True)
class TextToImageRequest:
    model: str
    prompt: str
    negative_prompt: str = ""
    steps: int = 25
    guidance_scale: float = DEFAULT_GUIDANCE_SCALE  # classifier-free guidance; 1 turns it off (and the negative prompt)
    width: int = 512
    height: int = 512
    num_images: int = 1
    seed: int | None = None  # None draws a random seed, reported in the result
    scheduler: str = "DPM++ 2M"
    lora: str | None = None  # a catalog LoRA trained on this model
    lora_weight: float = 1.0  # 0 gives exactly the base model's images
    tiny_autoencoder: str | None = None  # a catalog TAESD for this model: previews through its decoder
    tiny_final_decode: bool = False  # and the final images too, instead of the model's VAE
    truncate_long_prompts: bool = False  # cut prompts at the text encoder's context, instead of encoding in chunks

    def validated(self, max_batch_size: int) -> "TextToImageRequest":
        """Check every field; return a copy with the seed resolved."""
        for label, text in (("Prompt", self.prompt), ("Negative prompt", self.negative_prompt)):
            if not isinstance(text, str):
                raise ValueError(f"{label} must be text, got {text!r}.")
        require_int("Steps", self.steps, 1, MAX_STEPS)
        require_int("Number of images", self.num_images, 1, max_batch_size)
        for label, side in (("Width", self.width), ("Height", self.height)):
            if isinstance(side, bool) or not isinstance(side, int) or side % SIDE_MULTIPLE \
                    or not MIN_SIDE <= side <= MAX_SIDE:
                raise ValueError(f"{label} must be a multiple of {SIDE_MULTIPLE} from {MIN_SIDE} to {MAX_SIDE} "
                                 f"pixels, got {side!r}.")
        guidance = self.guidance_scale
        if not is_number_in(guidance, 1, MAX_GUIDANCE):
            raise ValueError(f"CFG scale must be a number from 1 (no guidance) to {MAX_GUIDANCE}, got {guidance!r}.")
        if not is_number_in(self.lora_weight, 0, MAX_LORA_WEIGHT):
            raise ValueError(f"LoRA weight must be a number from 0 to {MAX_LORA_WEIGHT:g}, got {self.lora_weight!r}.")
        if not isinstance(self.tiny_final_decode, bool):
            raise ValueError(f"Final decode with the tiny autoencoder must be true or false, got "
                             f"{self.tiny_final_decode!r}.")
        if not isinstance(self.truncate_long_prompts, bool):
            raise ValueError(f"Truncate long prompts must be true or false, got {self.truncate_long_prompts!r}.")
        if self.tiny_final_decode and not self.tiny_autoencoder:
            raise ValueError("Choose a tiny autoencoder to decode the final images with it.")
        if self.scheduler not in TEXT_TO_IMAGE_SCHEDULERS:
            raise ValueError(f"Unknown sampler {self.scheduler!r}; "
                             f"choose one of {', '.join(TEXT_TO_IMAGE_SCHEDULERS)}.")
        if self.seed is None:
            return replace(self, seed=secrets.randbelow(MAX_SEED + 1))
        require_int("Seed", self.seed, 0, MAX_SEED)
        return self


@dataclass
class TextToImageStep:
    index: int  # 0-based position in the pipeline's loop
    total: int  # the loop's length: the steps asked for (PNDM adds one)
    preview: list[Image.Image] | None  # approximate images, on preview steps only


class GenerationStopped(Exception):
    """Raised in the step callback to end a pipeline call that nobody is listening to any more."""


class TextToImageRun:
    """One request. Iterate it for a TextToImageStep per denoising step, then read `images`.

    Closing the iteration early (Stop in the UI) ends the pipeline call after its current step.
    """

    def __init__(self, studio: Studio, request: TextToImageRequest, preview_every: int = 0):
        self.request = request.validated(studio.settings.max_batch_size)
        require_int("Preview interval", preview_every, 0, MAX_STEPS)
        studio.listed_or_added(self.request.model, TEXT_TO_IMAGE)
        check_lora(studio, self.request.lora, self.request.lora_weight, self.request.model)
        check_tiny_autoencoder(studio, self.request.tiny_autoencoder, self.request.model)
        shared = studio.pipeline(self.request.model, TEXT_TO_IMAGE)
        self.studio = studio
        scheduler = make_scheduler(self.request.scheduler, shared.scheduler.config, TEXT_TO_IMAGE_SCHEDULERS)
        self.pipeline = self.request_pipeline(shared, scheduler)
        self.tiny = tiny_autoencoder(studio, self.request.tiny_autoencoder) if self.request.tiny_autoencoder else None
        if self.request.tiny_final_decode:
            self.pipeline.vae = self.tiny  # on this request's copy only: the pipeline decodes with TAESD as diffusers'
            # docs swap it in, dividing by its scaling_factor of 1
        self.preview_every = preview_every
        self.seeds = image_seeds(self.request.seed, self.request.num_images)
        self._lock = pipeline_lock(shared)
        prompts = {"Prompt": self.request.prompt, "Negative prompt": self.request.negative_prompt}
        with self._lock:
            if self.request.truncate_long_prompts:
                self.truncated = {label: dropped for label, text in prompts.items()
                                  if (dropped := truncated_part(shared.tokenizer, text))}
                self.chunks = {}
            else:
                self.truncated = {}
                self.chunks = {label: count for label, text in prompts.items()
                               if (count := prompt_chunks(shared.tokenizer, text)) > 1}
        self.images: list[Image.Image] | None = None
        self.flagged: list[bool] = []  # the safety checker's verdict per image, for models that have one
        self.seconds = 0.0
        self.steps_done = 0
        self._steps: queue.Queue = queue.Queue()
        self._stopped = threading.Event()
        self.worker = threading.Thread(target=self._call_pipeline, name="text-to-image", daemon=True)

    def __getstate__(self) -> dict:
        """The run as it comes back from a Ray replica: its images and timing, not its pipeline or thread."""
        return portable_state(self, kept_here=("studio", "pipeline", "tiny", "_lock", "_steps", "_stopped", "worker"))

    def __iter__(self) -> Iterator[TextToImageStep]:
        start = time.perf_counter()
        self.worker.start()
        try:
            while isinstance(item := self._steps.get(), TextToImageStep):
                self.seconds = time.perf_counter() - start
                yield item
            if isinstance(item, Exception):
                raise item
            self._finish(item)
            self.seconds = time.perf_counter() - start
        finally:
            # After Stop the call ends at its next step callback. No join: Gradio closes a cancelled
            # iterator from its event loop, which must not wait for a step to finish.
            self._stopped.set()

    def request_pipeline(self, shared: DiffusionPipeline, scheduler) -> DiffusionPipeline:
        """The pipeline this request calls: the cached one's models with the request's own scheduler."""
        return pipeline_for_request(shared, scheduler)

    def call_arguments(self) -> dict:
        """What the request asks the pipeline for."""
        request = self.request
        return {
            **self.prompt_arguments(),
            "num_inference_steps": request.steps,
            "guidance_scale": request.guidance_scale,
            "width": request.width,
            "height": request.height,
            "num_images_per_prompt": request.num_images,
            "generator": [torch.Generator("cpu").manual_seed(seed) for seed in self.seeds],
        }

    def prompt_arguments(self) -> dict:
        """The prompts as text, or as compel's embeddings when they carry weights or are longer than the context."""
        request = self.request
        prompts = [request.prompt, request.negative_prompt]
        if not needs_embeddings(self.pipeline.tokenizer, prompts, request.truncate_long_prompts):
            return {"prompt": prompt_words(request.prompt),
                    "negative_prompt": prompt_words(request.negative_prompt)}
        return weighted_embeddings(self.pipeline, *prompts, truncate=request.truncate_long_prompts,
                                   guided=request.guidance_scale > 1)

    def watching_the_call(self):
        """A context the pipeline call runs in, holding the pipeline lock: where a subclass installs what
        records the call (attention_maps.py) and takes it out again."""
        return contextlib.nullcontext()

    def _call_pipeline(self) -> None:
        request = self.request
        self._lock.acquire()  # for the whole call: the adapters and the tokenizer's settings are shared state
        try:
            apply_lora(self.studio, self.pipeline, request.lora, request.lora_weight)
            with self.watching_the_call():
                output = self.pipeline(**self.call_arguments(), callback_on_step_end=self._on_step_end)
        except GenerationStopped as stopped:
            logger.info("stopped %s after %d of %d steps", request.model, self.steps_done, request.steps)
            self.pipeline.maybe_free_model_hooks()  # what the call does at its end: offloaded models go back
            self._steps.put(stopped)
        except Exception as err:  # handed to the caller's thread, which raises it
            self._steps.put(err)
        else:
            self._steps.put(output)
        finally:
            self._lock.release()

    def _on_step_end(self, pipeline: DiffusionPipeline, index: int, timestep, tensors: dict) -> dict:
        # Raising (rather than setting pipeline._interrupt) also skips the final VAE decode nobody will see.
        if self._stopped.is_set():
            raise GenerationStopped
        self.steps_done = index + 1
        total = pipeline.num_timesteps
        preview_step = self.preview_every and (index + 1) % self.preview_every == 0 and index + 1 < total
        self._steps.put(TextToImageStep(index, total, self.preview(tensors["latents"]) if preview_step else None))
        return tensors

    def preview(self, latents: torch.Tensor) -> list[Image.Image] | None:
        """The tiny autoencoder's decode when the request chose one, else the linear latent-to-RGB map."""
        return tiny_decode(self.tiny, latents) if self.tiny is not None else latent_preview(latents)

    def _finish(self, output) -> None:
        self.images = [with_parameters(image, self.parameters(seed)) for image, seed in zip(output.images, self.seeds)]
        self.flagged = list(getattr(output, "nsfw_content_detected", None) or [])

    def parameters(self, seed: int) -> str:
        request = self.request
        return format_parameters(self.parameter_fields(seed), prompt=request.prompt,
                                 negative_prompt=request.negative_prompt)

    def parameter_fields(self, seed: int) -> dict:
        return text_to_image_fields(self.request, seed)


def text_to_image_fields(request: TextToImageRequest, seed: int) -> dict:
    """The PNG parameters of an image a request made with `seed`, as the Text to image tab reads them back."""
    return {
        "Steps": request.steps,
        "Sampler": request.scheduler,
        "CFG scale": f"{request.guidance_scale:g}",
        "Seed": seed,
        "Size": f"{request.width}x{request.height}",
        "Model": request.model,
        "LoRA": request.lora or None,
        "LoRA weight": f"{request.lora_weight:g}" if request.lora else None,
        "VAE": request.tiny_autoencoder if request.tiny_final_decode else None,  # as AUTOMATIC1111 names its VAE
        "Long prompts": "truncated" if request.truncate_long_prompts else None,
    }


def pipeline_for_request(shared: DiffusionPipeline, scheduler) -> DiffusionPipeline:
    """A shallow copy of the cached pipeline with its own scheduler; the models inside are shared, not copied.

    (`from_pipe` makes such a pipeline too, but casts the shared models to float32 unless given a dtype, and
    warns on every call when given one.)
    """
    pipeline = copy.copy(shared)
    pipeline.scheduler = scheduler
    return pipeline


def truncated_part(tokenizer, text: str) -> str | None:
    """The end of a prompt that the text encoder will not see (CLIP reads 77 tokens, start and end included)."""
    ids = tokenizer(prompt_words(text)).input_ids
    limit = tokenizer.model_max_length
    return tokenizer.decode(ids[limit - 1:-1]) if len(ids) > limit else None


def latent_preview(latents: torch.Tensor) -> list[Image.Image] | None:
    """Approximate images at 1/8 size from Stable Diffusion latents, without the VAE; None for other latents."""
    if latents.ndim != 4 or latents.shape[1] != len(LATENT_RGB_FACTORS):
        return None
    return to_pil(torch.einsum("bchw,cr->brhw", latents.detach().float().cpu(), LATENT_RGB_FACTORS))


def generate(studio: Studio, request: TextToImageRequest) -> tuple[list[Image.Image], TextToImageRun]:
    """Run a request to the end; returns the images and the finished run (seeds, timing, truncation)."""
    run = TextToImageRun(studio, request)
    for _ in run:
        pass
    return run.images, run
