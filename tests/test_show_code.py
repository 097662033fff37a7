"""Show the code: the script exported for an image makes that image when run on its own, in a fresh Python
process, offline, with diffusers alone (float32: equal within 1/255).

The scripts import nothing of the app. The process that runs them first makes torchvision importable on this
CPU-only machine (diffusion_app.torchvision_compat), as the app does, since diffusers imports it through
transformers; a user's own torch install needs no such step."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from dataclasses import replace
from pathlib import Path

import gradio as gr
import numpy as np
import pytest
import torch
from PIL import Image

from diffusion_app.demo_clip import TINY_CLIP_NAME
from conftest import TINY_LCM_LORA, TINY_MODEL, TINY_SD_MODEL, TINY_TAESD
from test_weighted_prompts import LONG_PROMPT
from diffusion_app.service.generation.clip_guidance import ClipPrompt
from diffusion_app.service.generation.guidance import ColourObjective, Guidance, GuidedRun
from diffusion_app.service.generation.inpaint_canvas import Outpaint, checked_canvas
from diffusion_app.service.generation.inpaint_scripts import inpaint_pictures
from diffusion_app.service.generation.inpainting import REPAINT, REPLACE, InpaintRun, PixelInpaintRun
from diffusion_app.service.generation.image_to_image import SDEditRun, image_to_image_run
from diffusion_app.service.generation.sampling import SamplingRequest, sample
from diffusion_app.service.generation.show_code import image_script, start_picture
from diffusion_app.service.generation.text2img import TextToImageRequest, generate
from diffusion_app.service.models.clip_models import ClipSpec
from diffusion_app.service.studio import Studio
from diffusion_app.settings import Settings
from running_app import REPO_ROOT

RUN_SCRIPTS = """
import runpy, sys
from diffusion_app.torchvision_compat import ensure_torchvision_importable
ensure_torchvision_importable()
for script, image in zip(sys.argv[1::2], sys.argv[2::2]):
    sys.argv = [script, image]
    runpy.run_path(script, run_name="__main__")
"""


def app_images(studio: Studio, bundled: Studio,
               clip_studio: Studio) -> tuple[dict[str, tuple[Image.Image, Studio, str]], Image.Image, tuple]:
    """One image per case, as each tab makes it: (image, the studio that made it, the tab's title); the picture
    Image to image started from; and Inpaint's canvas and mask."""
    unconditional, _ = sample(studio, SamplingRequest(TINY_MODEL, num_images=2, steps=6, seed=3, scheduler="DDPM"))
    ddim, _ = sample(studio, SamplingRequest(TINY_MODEL, num_images=1, steps=5, seed=8, scheduler="DDIM", eta=0.5))
    digits, _ = sample(studio, SamplingRequest("tiny-digits", num_images=1, steps=5, seed=2, scheduler="DDIM",
                                               classes=(3, 7), guidance_scale=3.0))
    digits_plain, _ = sample(studio, SamplingRequest("tiny-digits", num_images=1, steps=4, seed=2, classes=(5,)))
    text, _ = generate(studio, TextToImageRequest(TINY_SD_MODEL, "a red apple", negative_prompt="blurry", steps=3,
                                                  width=64, height=64, seed=4, scheduler="Euler a"))
    weighted, _ = generate(studio, TextToImageRequest(TINY_SD_MODEL, "a (red:1.6) apple, [blurry]",
                                                      negative_prompt="(dark:1.3)", steps=3, width=64, height=64,
                                                      seed=4, scheduler="Euler a"))
    long, _ = generate(studio, TextToImageRequest(TINY_SD_MODEL, LONG_PROMPT, steps=3, width=64, height=64, seed=4,
                                                  scheduler="Euler", guidance_scale=1))
    fast, _ = generate(studio, TextToImageRequest(TINY_SD_MODEL, "a red apple", steps=2, width=64, height=64, seed=4,
                                                  scheduler="LCM", guidance_scale=1, lora=TINY_LCM_LORA,
                                                  lora_weight=0.8, tiny_autoencoder=TINY_TAESD,
                                                  tiny_final_decode=True))
    colour_fast = GuidedRun(studio, SamplingRequest(TINY_MODEL, num_images=1, steps=6, seed=5, scheduler="DDIM"),
                            Guidance(scale=40, method="fast", every=2, start=0.2), ColourObjective("#ff8000"))
    colour_exact = GuidedRun(studio, SamplingRequest("tiny-gray", num_images=1, steps=5, seed=5, scheduler="DDPM"),
                             Guidance(scale=40, method="exact"), ColourObjective("#2060ff"))
    clip_folder = GuidedRun(bundled, SamplingRequest("openmoji", num_images=1, steps=6, seed=5, scheduler="DDIM"),
                            Guidance(scale=200, method="fast", every=2), ClipPrompt(ClipSpec("emoji-clip", "local"),
                                                                                    "red heart", 4))
    clip_file = GuidedRun(clip_studio, SamplingRequest("tiny-gray", num_images=1, steps=4, seed=7, scheduler="DDPM"),
                          Guidance(scale=1000, method="exact", end=0.5),
                          ClipPrompt(ClipSpec(TINY_CLIP_NAME, str(tiny_clip_weights(clip_studio))), "a cat", 3))
    for guided in (colour_fast, colour_exact, clip_folder, clip_file):
        for _ in guided:
            pass
    picture = Image.effect_mandelbrot((72, 64), (-2, -1.2, 1, 1.2), 60).convert("RGB")  # resized to 72x64 for SD
    redrawn = image_to_image_run(studio, TextToImageRequest(TINY_SD_MODEL, "a red apple", steps=5, width=72,
                                                            height=64, seed=9, scheduler="DDIM"), picture, 0.6)
    for _ in redrawn:
        pass
    sdedit = SDEditRun(studio, SamplingRequest(TINY_MODEL, num_images=1, steps=10, seed=9, scheduler="DDIM"),
                       picture, 0.5)
    for _ in sdedit:
        pass
    canvas, mask = checked_canvas(picture.crop((0, 0, 64, 64)), Image.new("L", (64, 64)), Outpaint(right=16))
    inpainted = {method: PixelInpaintRun(studio, SamplingRequest(TINY_MODEL, num_images=1, steps=6, seed=4,
                                                                 scheduler="DDIM", eta=0.3),
                                         canvas, mask, method, jump_length=2, resampling=2)
                 for method in (REPAINT, REPLACE)}
    inpainted["sd"] = InpaintRun(studio, TextToImageRequest(TINY_SD_MODEL, "a (red:1.4) apple",
                                                            negative_prompt="blurry", steps=3, width=80, height=64, seed=5,
                                                            scheduler="Euler a"), canvas, mask, 0.9, mask_blur=3)
    inpainted["only masked"] = InpaintRun(studio, TextToImageRequest(TINY_SD_MODEL, "a red apple", steps=2, width=80,
                                                                     height=64, seed=6), canvas, mask, mask_padding=8)
    for run in inpainted.values():
        for _ in run:
            pass
    openmoji, _ = sample(bundled, SamplingRequest("openmoji", num_images=1, steps=4, seed=6, scheduler="DDIM"))
    return {
        "unconditional, second image of a batch": (unconditional[1], studio, "Unconditional"),
        "ddim with eta": (ddim[0], studio, "DDIM step control"),
        "digits with CFG": (digits[1], studio, "Digits"),
        "digits without CFG": (digits_plain[0], studio, "Digits"),
        "text to image": (text[0], studio, "Text to image"),
        "text to image with a LoRA and a tiny decoder": (fast[0], studio, "Text to image"),
        "text to image, weighted prompts": (weighted[0], studio, "Text to image"),
        "text to image, a long prompt in chunks, without CFG": (long[0], studio, "Text to image"),
        "colour guidance, fast, every 2nd step from 0.2": (colour_fast.images()[0], studio, "Colour guidance"),
        "colour guidance, exact, grayscale": (colour_exact.images()[0], studio, "Colour guidance"),
        "CLIP guidance, a bundled CLIP model folder": (clip_folder.images()[0], bundled, "CLIP guidance"),
        "CLIP guidance, exact, a config and checkpoint file, grayscale": (clip_file.images()[0], clip_studio,
                                                                          "CLIP guidance"),
        "image to image, Stable Diffusion": (redrawn.images[0], studio, "Image to image"),
        "image to image, pixel model": (sdedit.images()[0], studio, "Image to image"),
        "bundled model": (openmoji[0], bundled, "DDIM step control"),
        "inpaint, RePaint, outpainted": (inpainted[REPAINT].images()[0], studio, "Inpaint"),
        "inpaint, the baseline on DDIM": (inpainted[REPLACE].images()[0], studio, "Inpaint"),
        "inpaint, Stable Diffusion, blurred mask, a weighted prompt": (inpainted["sd"].images[0], studio, "Inpaint"),
        "inpaint, Stable Diffusion, only masked": (inpainted["only masked"].images[0], studio, "Inpaint"),
    }, picture, (canvas, mask)


def tiny_clip_weights(studio: Studio) -> Path:
    """The tiny CLIP's checkpoint, beside its config (conftest's build_tiny_clip)."""
    (config,) = studio.settings.clip_configs
    return config.with_suffix(".safetensors")


def test_each_script_makes_its_image_in_a_fresh_process(studio, tiny_clip, tmp_path):
    bundled = Studio(Settings(models_dir=REPO_ROOT / "models", data_dir=tmp_path / "data", offline=True,
                              dtype=torch.float32))
    clip_studio = Studio(replace(studio.settings, clip_configs=(tiny_clip[0],)))
    cases, picture, (canvas, mask) = app_images(studio, bundled, clip_studio)
    arguments = []
    for number, (image, made_by, tab) in enumerate(cases.values()):
        folder = tmp_path / f"case_{number}"  # as the download unpacks: the script, and the picture it starts from
        folder.mkdir()
        script = folder / "make_image.py"
        script.write_text(image_script(made_by.catalog, image.info["parameters"], torch.float32, tab,
                                       made_by.clip_folders(), made_by.settings.clip_configs))
        if made_by is clip_studio:  # a checkpoint and a config are named by their files, put beside the script
            shutil.copy(tiny_clip[0], folder)
            shutil.copy(tiny_clip[1], folder)
        if tab == "Image to image":
            start_picture(image.info["parameters"], picture, image).save(folder / "start.png")
        for name, made_from in inpaint_pictures(image.info["parameters"], canvas, mask, image).items():
            made_from.save(folder / name)
        arguments += [str(script), str(tmp_path / f"image_{number}.png")]
    bundled_script = tmp_path / f"case_{list(cases).index('bundled model')}" / "make_image.py"
    assert "MODEL = 'models/openmoji'" in bundled_script.read_text()  # a bundled model by its folder in the checkout
    environment = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO_ROOT)}
    subprocess.run([sys.executable, "-c", RUN_SCRIPTS, *arguments], cwd=REPO_ROOT, env=environment, check=True,
                   timeout=300)
    for number, (case, (image, _, _)) in enumerate(cases.items()):
        made = np.asarray(Image.open(tmp_path / f"image_{number}.png"), dtype=float)
        assert made.shape == np.asarray(image).shape, case
        assert np.abs(made - np.asarray(image, dtype=float)).max() <= 1, case


def test_the_script_says_what_it_loads(studio):
    images, _ = generate(studio, TextToImageRequest(TINY_SD_MODEL, "a fox, sitting", steps=2, width=64, height=64,
                                                    seed=1, lora=TINY_LCM_LORA, scheduler="LCM", guidance_scale=1))
    script = image_script(studio.catalog, images[0].info["parameters"], torch.float32, "Text to image")
    assert "LCMScheduler.from_config" in script and "prompt='a fox, sitting'" in script
    assert f"load_lora_weights({str(studio.catalog.get(TINY_LCM_LORA).source)!r}" in script
    assert "pip install torch diffusers transformers peft" in script


@pytest.mark.parametrize("weights, loads", [
    ("openai", "pretrained=str(WEIGHTS), force_quick_gelu=True)"),  # OpenAI's weights were trained with QuickGELU
    ("laion2b_s34b_b79k", "pretrained=str(WEIGHTS))"),
])
def test_a_clip_guided_script_names_open_clips_architecture_and_pretrained_tag(studio, weights, loads):
    parameters = (f"red heart\nSteps: 3, Sampler: DDIM, Seed: 1, Size: 16x16, Model: {TINY_MODEL}, Guidance scale: 50, "
                  f"Guidance method: fast, Guidance: CLIP, CLIP model: ViT-B-32/{weights}, Cutouts: 8")
    script = image_script(studio.catalog, parameters, torch.float32, "CLIP guidance")
    assert "ARCHITECTURE = 'ViT-B-32'" in script and f"WEIGHTS = {weights!r}" in script and loads in script
    assert "CUTOUTS = 8" in script and "pip install torch diffusers open_clip_torch" in script


@pytest.mark.parametrize("parameters, message", [
    ("Forward process: t=50, Schedule: linear", "no model and seed"),
    (f"Steps: 3, Sampler: Heun, Seed: 1, Size: 16x16, Model: {TINY_MODEL}", "Unknown sampler 'Heun'"),
    ("Steps: 3, Sampler: DDIM, Seed: 1, Size: 16x16, Model: no-such-model", "Unknown model"),
    (f"Steps: 3, Sampler: DDIM, Seed: 1, Size: 16x16, Model: {TINY_MODEL}, Guidance: style", "no script for style"),
])
def test_an_image_without_what_a_script_needs_gets_a_message(studio, parameters, message):
    with pytest.raises(ValueError, match=message):
        image_script(studio.catalog, parameters, torch.float32, "Unconditional")


@pytest.fixture(scope="module")
def bundled_app(tmp_path_factory):
    """The app on the bundled models, float32: (its studio, its Blocks), whose handlers the tests call."""
    from diffusion_app.ui import build_app

    studio = Studio(Settings(models_dir=REPO_ROOT / "models", data_dir=tmp_path_factory.mktemp("data"), offline=True,
                             dtype=torch.float32))
    return studio, build_app(studio)


def panel_handlers(app, inputs: int, start: type | None = None) -> list:
    """The Show the code panels' handlers that fill the code after a run (one per tab), taking `inputs` inputs,
    the second of them (what the tab starts from) of type `start`."""
    return [fn.fn for fn in app.fns.values() if getattr(fn.fn, "__name__", "") == "show_first"
            and len(fn.inputs) == inputs and (start is None or isinstance(fn.inputs[1], start))]


def test_clip_guidance_shows_the_code_of_its_image(bundled_app, tmp_path):
    from diffusion_app.core.metadata import save_png

    studio, app = bundled_app
    run = GuidedRun(studio, SamplingRequest("openmoji", num_images=1, steps=4, seed=2, scheduler="DDIM"),
                    Guidance(scale=100), ClipPrompt(ClipSpec("emoji-clip", "local"), "green apple", 2))
    for _ in run:
        pass
    made = save_png(run.images()[0], tmp_path / "made.png")
    scripts = [show_first([(str(made), None)])[0] for show_first in panel_handlers(app, inputs=1)]
    (script,) = [script for script in scripts if script.startswith('"""The CLIP guidance tab\'s image')]
    assert "PROMPT = 'green apple'" in script and "CLIP_MODEL = 'local-dir:models/emoji-clip'" in script


def test_the_text_to_image_views_show_the_code_of_their_image(bundled_app, tmp_path):
    """Step by step and Attention maps make the image Text to image makes; their panels show its script."""
    from diffusion_app.core.metadata import save_png, with_parameters

    _, app = bundled_app
    parameters = "red apple\nSteps: 3, Sampler: Euler a, CFG scale: 7.5, Seed: 12, Size: 64x64, Model: emoji-t2i"
    made = save_png(with_parameters(Image.new("RGB", (64, 64)), parameters), tmp_path / "made.png")
    scripts = {script.splitlines()[0]: script for script in
               (show_first(str(made))[0] for show_first in panel_handlers(app, inputs=1))}
    for tab in ("Text to image", "Step by step", "Attention maps"):
        script = scripts[f'"""The {tab} tab\'s image: emoji-t2i, Euler a, 3 steps, seed 12.']
        assert "AutoPipelineForText2Image.from_pretrained(MODEL" in script and "manual_seed(12)" in script


def test_image_to_image_downloads_the_script_with_its_start_picture(bundled_app, tmp_path):
    from diffusion_app.core.metadata import save_png

    studio, app = bundled_app
    (show_first,) = panel_handlers(app, inputs=2, start=gr.Image)  # Image to image's panel: it takes the picture
    picture = Image.effect_mandelbrot((40, 40), (-2, -1.2, 1, 1.2), 60).convert("RGB")
    run = SDEditRun(studio, SamplingRequest("openmoji", num_images=1, steps=4, seed=1, scheduler="DDIM"), picture, 0.5)
    for _ in run:
        pass
    made = save_png(run.images()[0], tmp_path / "made.png")
    script, download = show_first([(str(made), None)], picture)
    with zipfile.ZipFile(download.value["path"]) as archive:
        assert sorted(archive.namelist()) == ["make_image.py", "start.png"]
        assert archive.read("make_image.py").decode() == script and "STRENGTH = 0.5" in script
        start = Image.open(archive.open("start.png"))
        assert start.size == (32, 32)
        expected = start_picture(Image.open(made).info["parameters"], picture, Image.open(made))
        assert np.array_equal(np.asarray(start), np.asarray(expected))


def test_inpaint_downloads_the_script_with_its_canvas_and_mask(bundled_app, tmp_path):
    from diffusion_app.core.metadata import save_png

    studio, app = bundled_app
    (show_first,) = panel_handlers(app, inputs=2, start=gr.Gallery)  # Inpaint's: it takes the canvas and mask
    canvas, mask = checked_canvas(Image.effect_mandelbrot((40, 40), (-2, -1.2, 1, 1.2), 60).convert("RGB"),
                                  Image.new("L", (40, 40)), Outpaint(down=8))
    run = PixelInpaintRun(studio, SamplingRequest("openmoji", num_images=1, steps=3, seed=1), canvas, mask, REPLACE)
    for _ in run:
        pass
    made = save_png(run.images()[0], tmp_path / "made.png")
    script, download = show_first([(str(made), None)], [(canvas, None), (mask, None)])
    with zipfile.ZipFile(download.value["path"]) as archive:
        assert sorted(archive.namelist()) == ["make_image.py", "mask.png", "start.png"]
        assert archive.read("make_image.py").decode() == script and "sample = redraw * sample" in script
        kept = np.asarray(Image.open(archive.open("mask.png"))) == 0
        assert Image.open(archive.open("mask.png")).size == (32, 32) and kept[:26].all() and not kept[28:].any()
