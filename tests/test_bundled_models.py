"""The bundled models in models/: small fp16 files, each tab's offline default, loadable by plain diffusers and
open_clip, and drawing what they are asked for."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import open_clip
from diffusers import DDPMPipeline, LCMScheduler, StableDiffusionPipeline
from safetensors import safe_open

from diffusion_app.catalog import CLASS_CONDITIONAL, TEXT_TO_IMAGE, UNCONDITIONAL, build_catalog
from diffusion_app.core.class_conditional import ClassConditionalPipeline
from diffusion_app.hardware import CPU_FIRST_CLICK, GPU_FIRST_CLICK
from diffusion_app.service.models.clip_models import LOCAL_WEIGHTS, ClipSpec
from diffusion_app.service.generation.guidance import ColourObjective, Guidance, GuidedRun
from diffusion_app.service.generation.sampling import DEFAULT_CFG_SCALE, SamplingRequest, sample
from diffusion_app.service.studio import Studio
from diffusion_app.settings import Settings
from diffusion_app.training.packaged_data import mnist_arrays
from diffusion_app.ui.colour_guidance import DEFAULT_COLOUR
from running_app import REPO_ROOT

BUNDLED = REPO_ROOT / "models"
MEGABYTES = {"openmoji": 20, "digits": 20, "emoji-clip": 30, "emoji-t2i": 64, "emoji-t2i-lcm": 4}  # what each may weigh in all


@pytest.fixture(scope="module")
def studio(tmp_path_factory) -> Studio:
    """The app's service on models/ only, offline, as `python app.py` on a fresh machine."""
    return Studio(Settings(models_dir=BUNDLED, data_dir=tmp_path_factory.mktemp("data"), offline=True))


def test_bundled_models_are_each_tabs_offline_default(studio):
    catalog = build_catalog([BUNDLED])
    assert catalog.default(UNCONDITIONAL) == "openmoji"
    assert catalog.default(CLASS_CONDITIONAL) == "digits"
    assert catalog.default(TEXT_TO_IMAGE) == "emoji-t2i"  # Stable Diffusion 1.5 is not on this machine
    assert studio.offered_clip_specs()[0] == ClipSpec("emoji-clip", LOCAL_WEIGHTS)  # CLIP guidance's default


@pytest.mark.parametrize("name", list(MEGABYTES))
def test_weights_are_small_fp16_safetensors_with_their_recipe(name):
    files = list((BUNDLED / name).rglob("*.safetensors"))
    assert files and not list((BUNDLED / name).rglob("*.bin"))
    for path in files:
        with safe_open(path, "pt") as weights:
            assert {weights.get_tensor(key).dtype for key in weights.keys()} == {torch.float16}
    assert sum(path.stat().st_size for path in files) < MEGABYTES[name] * 2**20
    assert (BUNDLED / name / "training_config.json").is_file()


@pytest.mark.parametrize("name", ["openmoji", "emoji-clip", "emoji-t2i", "emoji-t2i-lcm"])
def test_models_trained_on_openmoji_are_attributed(name):
    assert "CC BY-SA 4.0" in (BUNDLED / name / "ATTRIBUTION.txt").read_text()


def test_openmoji_loads_with_plain_diffusers():
    pipeline = DDPMPipeline.from_pretrained(BUNDLED / "openmoji", dtype=torch.float32)
    images = pipeline(batch_size=1, num_inference_steps=5, generator=torch.manual_seed(0), output_type="np").images
    assert images.shape == (1, 32, 32, 3) and np.isfinite(images).all()


def test_openmoji_draws_emoji_on_a_white_background(studio):
    """Training emoji sit on white; a random-weight model's borders are mid-grey noise."""
    images, _ = sample(studio, SamplingRequest("openmoji", num_images=8, steps=20, seed=0, scheduler="DDIM"))
    pixels = np.stack([np.asarray(image, dtype=np.float32) for image in images])
    border = np.concatenate([pixels[:, :2].reshape(-1, 3), pixels[:, -2:].reshape(-1, 3)])
    assert np.median(border) > 200
    assert pixels[:, 8:24, 8:24].std() > 40  # something is drawn in the middle


def test_digits_round_trips_and_draws_the_requested_digits(studio):
    """Each generated digit is closer to the mean real image of its own digit than to most others."""
    pipeline = ClassConditionalPipeline.from_pretrained(BUNDLED / "digits", dtype=torch.float32)
    assert pipeline.class_names == [str(digit) for digit in range(10)]
    assert pipeline.null_class_label == 10  # trained with class dropout: the Digits tab's CFG scale works

    real, labels = mnist_arrays()
    centroids = np.stack([real[labels == digit].mean(0) for digit in range(10)]).reshape(10, -1)
    request = SamplingRequest("digits", num_images=4, steps=20, seed=0, scheduler="DDIM", classes=tuple(range(10)),
                              guidance_scale=DEFAULT_CFG_SCALE)
    images, _ = sample(studio, request)
    pixels = np.stack([np.asarray(image, dtype=np.float32) for image in images])
    border = np.concatenate([pixels[:, :3].ravel(), pixels[:, -3:].ravel(), pixels[:, :, :3].ravel()])
    assert np.median(border) < 10  # black, as in MNIST, not a grey haze
    generated = pixels.reshape(len(images), -1)
    correlation = np.corrcoef(generated, centroids)[:len(images), len(images):]
    rank_of_requested = (correlation > correlation[np.arange(len(images)), request.labels][:, None]).sum(1)
    assert np.mean(rank_of_requested < 3) >= 0.8  # chance: 0.3


def test_emoji_clip_loads_with_plain_open_clip():
    model = open_clip.create_model(f"local-dir:{BUNDLED / 'emoji-clip'}").eval()
    tokenizer = open_clip.get_tokenizer(f"local-dir:{BUNDLED / 'emoji-clip'}")
    size = model.visual.image_size
    with torch.no_grad():
        texts = model.encode_text(tokenizer(["red heart", "green apple", "dog face"]))
        images = model.encode_image(torch.zeros(2, 3, *((size,) * 2 if isinstance(size, int) else size)))
    assert texts.shape == (3, images.shape[1]) and torch.isfinite(texts).all() and torch.isfinite(images).all()


def test_emoji_t2i_loads_with_plain_diffusers_at_64_px():
    pipeline = StableDiffusionPipeline.from_pretrained(BUNDLED / "emoji-t2i", dtype=torch.float32)
    assert pipeline.tokenizer.model_max_length == 32  # emoji-clip's context
    images = pipeline("red heart", num_inference_steps=4, height=64, width=64, generator=torch.manual_seed(0),
                      output_type="np").images
    assert images.shape == (1, 64, 64, 3) and np.isfinite(images).all()


def test_emoji_t2i_lcm_loads_with_plain_diffusers_and_draws_in_4_lcm_steps():
    """Its catalog entry offers it for emoji-t2i at its own settings; with plain diffusers' LCMScheduler and
    load_lora_weights it draws a red heart mostly red, where emoji-t2i alone at those 4 steps does not."""
    entry = build_catalog([BUNDLED]).get("emoji-t2i-lcm")
    assert entry.base_model == str((BUNDLED / "emoji-t2i").resolve()) and entry.few_step.steps == 4
    pipeline = StableDiffusionPipeline.from_pretrained(BUNDLED / "emoji-t2i", dtype=torch.float32)
    pipeline.scheduler = LCMScheduler.from_config(pipeline.scheduler.config)

    def red_share() -> float:
        images = pipeline(["red heart"] * 4, num_inference_steps=4, guidance_scale=1.0, height=64, width=64,
                          generator=torch.manual_seed(0), output_type="np").images
        red = (images[..., 0] > 0.5) & (images[..., 1] < 0.35) & (images[..., 2] < 0.35)
        return float(red.mean())

    without = red_share()
    pipeline.load_lora_weights(BUNDLED / "emoji-t2i-lcm")
    with_lora = red_share()
    assert with_lora > 0.1 and with_lora > 2 * without, (with_lora, without)


@pytest.mark.parametrize("emoji, colour", [("\U0001F7E3", "purple"), ("\U0001F49C", "purple"), ("\U0001F534", "red"),
                                           ("\U0001F7E5", "red"), ("\U0001F535", "blue")])
def test_emoji_t2i_vae_keeps_the_colours(emoji, colour):
    """Its first VAE decoded these purples as blue and these reds as orange; the refitted one keeps them. (OpenMoji's
    yellowish green, at the green/yellow border, still comes back yellow or orange: see docs/models.md.)"""
    from PIL import ImageFont

    from diffusion_app.training.colour_captions import dominant_colour
    from diffusion_app.training.packaged_data import OPENMOJI_FONT_SIZE, openmoji_font_path, render_emoji

    pipeline = StableDiffusionPipeline.from_pretrained(BUNDLED / "emoji-t2i", dtype=torch.float32)
    image = render_emoji(ImageFont.truetype(str(openmoji_font_path()), size=OPENMOJI_FONT_SIZE), emoji, 64)
    with torch.no_grad():
        decoded = pipeline.vae.decode(pipeline.vae.encode(pipeline.image_processor.preprocess(image)).latent_dist.mean)
    assert dominant_colour(image) == colour
    assert dominant_colour(pipeline.image_processor.postprocess(decoded.sample)[0]) == colour


@pytest.mark.parametrize("first_click", [CPU_FIRST_CLICK, GPU_FIRST_CLICK], ids=["cpu", "gpu"])
def test_colour_guidance_default_tints_the_emoji_and_keeps_it(studio, first_click):
    """At the tab's default scale and step count the guided emoji is nearer the target colour than the unguided
    one with the same seed, and still the same drawing (a scale that paints flat tiles loses the structure)."""
    request = SamplingRequest("openmoji", num_images=4, steps=first_click.guidance_steps, seed=3, scheduler="DDIM")
    objective = ColourObjective(DEFAULT_COLOUR)
    runs = [GuidedRun(studio, request, Guidance(scale), objective) for scale in (0.0, first_click.colour_guidance_scale)]
    unguided, guided = [(list(run), run.images())[1] for run in runs]
    assert objective.distance(guided) < objective.distance(unguided) - 0.03
    grey = [[np.asarray(image.convert("L"), dtype=np.float32).ravel() for image in pair] for pair in zip(unguided, guided)]
    correlations = [np.corrcoef(before, after)[0, 1] for before, after in grey]
    # measured: 0.91-0.99 (CPU) and 0.75-0.96 (GPU) at the defaults; scale 12 at 25 steps drops two to 0.37, 0.55
    assert min(correlations) > 0.7 and np.mean(correlations) > 0.8, correlations
