"""The code behind an image: a self-contained Python script, using diffusers and torch only, that makes the same
image from the parameters the image carries (its PNG `parameters` chunk).

Where the app calls a diffusers pipeline (Text to image), the script calls the same pipeline with the same
arguments. Where the app runs its own loop (Unconditional, DDIM, Digits: core/denoising.py), the script writes
that loop out: x_T from a CPU generator seeded with the image's seed, the UNet in the model's dtype on a float32
x_t, classifier-free guidance against the "no class" label, and the scheduler's step with the same options. A
bundled model is referred to by its folder (relative to the checkout when it lies inside it), a hub model by
its id. Each image of a batch has its own seed, so the script makes it alone.
"""

from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image

from ...catalog import CLASS_CONDITIONAL, TEXT_TO_IMAGE, UNCONDITIONAL, Catalog
from ...core.metadata import parse_parameters
from ...core.schedulers import TEXT_TO_IMAGE_SCHEDULERS, UNCONDITIONAL_SCHEDULERS
from .guided_scripts import clip_guidance, colour_guidance
from ..models.prompt_tokens import tokenizer_of
from .inpaint_scripts import inpaint_script
from .prompt_scripts import prompt_code

CHECKOUT = Path(__file__).resolve().parents[3]

PIXEL_SCRIPT = '''\
"""{title}

    pip install torch diffusers{pip}
    python {filename} [image.png]     # from the Diffusion Studio checkout, for a bundled model
"""
{imports}

MODEL = {model_source!r}  # {model_note}
SEED = {seed}
STEPS = {steps}
HEIGHT, WIDTH = {height}, {width}
DTYPE = torch.{dtype}  # the weights' dtype; x_t and the scheduler's arithmetic stay float32
{class_settings}
unet = UNet2DModel.from_pretrained(MODEL, subfolder="unet", torch_dtype=DTYPE)
scheduler = {scheduler_class}.from_pretrained(MODEL, subfolder="scheduler")
scheduler.set_timesteps(STEPS)

# x_T: noise drawn on the CPU, so that a seed gives the same image on any device.
generator = torch.Generator("cpu").manual_seed(SEED)
sample = torch.randn((1, unet.config.in_channels, HEIGHT, WIDTH), generator=generator)

{loop}
    with torch.no_grad():
        sample = scheduler.step(noise, timestep, sample, generator=generator{step_options}).prev_sample

# [-1, 1] -> pixels, as diffusers' pipelines convert them.
pixels = (sample / 2 + 0.5).clamp(0, 1)[0].permute(1, 2, 0).numpy()
picture = Image.fromarray((pixels * 255).round().astype("uint8").squeeze())
picture.save(sys.argv[1] if len(sys.argv) > 1 else "image.png")
'''

SDEDIT_START = '''\
# SDEdit: the picture noised to the timestep where the strength's share of the steps begins, then denoised.
mode = "RGB" if unet.config.in_channels == 3 else "L"
picture = Image.open(START).convert(mode).resize((WIDTH, HEIGHT), Image.Resampling.BICUBIC)
pixels = torch.from_numpy(np.asarray(picture, dtype=np.float32) / 127.5 - 1)
clean = (pixels.unsqueeze(0) if pixels.ndim == 2 else pixels.permute(2, 0, 1)).unsqueeze(0)
skip = STEPS - min(STEPS, int(STEPS * STRENGTH))
timesteps = scheduler.timesteps[skip:]
if skip == STEPS:  # strength 0: nothing to undo
    sample = clean
elif skip > 0:
    sample = scheduler.add_noise(clean, sample, timesteps[:1])

'''

PLAIN_PREDICTION = '''\
    with torch.no_grad():
        noise = unet(sample.to(DTYPE), timestep{labels}).sample.float()'''

GUIDED_PREDICTION = '''\
    with torch.no_grad():
        # Classifier-free guidance: the class's prediction and the "no class" one, from one doubled batch.
        labels = torch.tensor([LABEL, NULL_LABEL])
        both = unet(torch.cat([sample, sample]).to(DTYPE), timestep, class_labels=labels).sample.float()
        conditional, unconditional = both.chunk(2)
        noise = unconditional + GUIDANCE_SCALE * (conditional - unconditional)'''

TEXT_TO_IMAGE_SCRIPT = '''\
"""{title}

    pip install torch diffusers transformers{peft}{compel}
    python {filename} [image.png]     # from the Diffusion Studio checkout, for a bundled model
"""
import sys{path}

import torch
{compel_imports}from diffusers import {imports}{pil}

MODEL = {model_source!r}  # {model_note}
DTYPE = torch.{dtype}
{start_settings}
pipeline = {pipeline_class}.from_pretrained(MODEL, dtype=DTYPE)
pipeline.scheduler = {scheduler_class}.from_config(pipeline.scheduler.config)  # sampler "{sampler}"
{extras}
{prompt_setup}image = pipeline(
{prompt_arguments}
    num_inference_steps={steps},
    guidance_scale={guidance_scale},
{size_arguments}
    generator=torch.Generator("cpu").manual_seed({seed}),  # noise drawn on the CPU: the same on any device
).images[0]
image.save(sys.argv[1] if len(sys.argv) > 1 else "image.png")
'''


def model_reference(catalog: Catalog, name: str) -> tuple[str, str]:
    """(what from_pretrained is given, a comment on it): a folder relative to the checkout, or a hub id."""
    entry = catalog.get(name)
    folder = Path(entry.source)
    if not folder.is_absolute() and not folder.is_dir():
        return entry.source, f"{name}, a Hugging Face hub id"
    folder = folder.resolve()
    if folder.is_relative_to(CHECKOUT):
        return str(folder.relative_to(CHECKOUT)), f"{name}: its folder in the Diffusion Studio checkout"
    return str(folder), f"{name}: its folder"


def model_tokenizer(catalog: Catalog, name: str):
    """The tokenizer of a Stable Diffusion model the image was made with here (so its files are here)."""
    try:
        return tokenizer_of(catalog.get(name).source, offline=True)
    except OSError as err:
        raise ValueError(f"The tokenizer of {name} is not here, so its prompts cannot be written out.") from err


def dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def image_script(catalog: Catalog, parameters_text: str, dtype: torch.dtype, tab: str,
                 clip_folders: dict[str, Path] | None = None, clip_configs: tuple[Path, ...] = ()) -> str:
    """The script that makes the image whose PNG parameters are `parameters_text`, in `dtype` on the CPU; a
    CLIP-guided image's CLIP model is looked up among the app's CLIP model folders and config files."""
    fields = parse_parameters(parameters_text)
    if "Model" not in fields or "Seed" not in fields:
        raise ValueError("This image carries no model and seed, so there is no code to show for it.")
    kind = catalog.get(fields["Model"]).kind
    if "Mask" in fields:
        tokenizer = model_tokenizer(catalog, fields["Model"]) if kind == TEXT_TO_IMAGE else None
        return inpaint_script(fields, *model_reference(catalog, fields["Model"]), dtype_name(dtype), tab, tokenizer)
    if kind == TEXT_TO_IMAGE:
        return text_to_image_script(catalog, fields, dtype, tab)
    if kind in (UNCONDITIONAL, CLASS_CONDITIONAL):
        return pixel_script(catalog, fields, dtype, tab, clip_folders or {}, clip_configs)
    raise ValueError(f"There is no script for a {kind} model.")


def pixel_script(catalog: Catalog, fields: dict, dtype: torch.dtype, tab: str, clip_folders: dict[str, Path],
                 clip_configs: tuple[Path, ...]) -> str:
    """Unconditional, DDIM and Digits: the loop of core/denoising.py written out."""
    sampler = fields["Sampler"]
    if sampler not in UNCONDITIONAL_SCHEDULERS:
        raise ValueError(f"Unknown sampler {sampler!r} in the image's parameters.")
    width, height = (int(side) for side in fields["Size"].split("x"))
    guidance_scale = float(fields.get("CFG scale", 1))
    step_options = ""
    if sampler == "DDIM":  # guided predictions overshoot: DDIM re-derives the noise from the clipped x0
        step_options = f", eta={float(fields.get('Eta', 0.0))!r}, use_clipped_model_output={guidance_scale != 1}"
    class_settings, labels, prediction = "", "", None
    if "Class" in fields:
        entry = catalog.get(fields["Model"])
        label = list(entry.class_names).index(fields["Class"])
        class_settings = f"LABEL = {label}  # class {fields['Class']!r}\n"
        if guidance_scale != 1:
            class_settings += (f"NULL_LABEL = {len(entry.class_names)}  # 'no class', which class dropout trained\n"
                               f"GUIDANCE_SCALE = {guidance_scale!r}\n")
            prediction = GUIDED_PREDICTION
        labels = ", class_labels=torch.tensor([LABEL])"
    loop = "for timestep in scheduler.timesteps:\n" + (prediction or PLAIN_PREDICTION.format(labels=labels))
    if "Denoising strength" in fields:
        class_settings = ("START = Path(__file__).with_name(\"start.png\")  # the picture it started from\n"
                          f"STRENGTH = {float(fields['Denoising strength'])!r}  # 0: the picture as it is; 1: noise\n")
        loop = SDEDIT_START + loop.replace("in scheduler.timesteps:", "in timesteps:")
    if fields.get("Guidance"):  # the guided loop steps as the plain DDIM loop does, without clipped outputs
        step_options = step_options.split(", use_clipped")[0]
        if fields["Guidance"] == "colour":
            class_settings, loop = colour_guidance(fields, step_options)
        elif fields["Guidance"] == "CLIP":
            class_settings, loop = clip_guidance(fields, step_options, clip_folders, clip_configs, CHECKOUT)
        else:
            raise ValueError(f"There is no script for {fields['Guidance']} guidance.")
    model_source, model_note = model_reference(catalog, fields["Model"])
    return PIXEL_SCRIPT.format(
        imports=pixel_script_imports(class_settings + loop, UNCONDITIONAL_SCHEDULERS[sampler].__name__),
        pip=" open_clip_torch" if "open_clip." in loop else "",
        title=f"The {tab} tab's image: {fields['Model']}, {sampler}, {fields['Steps']} steps, seed {fields['Seed']}.",
        filename="make_image.py", scheduler_class=UNCONDITIONAL_SCHEDULERS[sampler].__name__,
        model_source=model_source, model_note=model_note, seed=int(fields["Seed"]), steps=int(fields["Steps"]),
        height=height, width=width, dtype=dtype_name(dtype), class_settings=class_settings, loop=loop,
        step_options=step_options)


def pixel_script_imports(body: str, scheduler_class: str) -> str:
    """The imports of a pixel model's script: the usual ones, and those its settings and loop use."""
    standard = ["import math"] * ("math." in body) + ["import sys"] + ["from pathlib import Path"] * ("Path(" in body)
    third_party = (["import numpy as np"] * ("np." in body) + ["import open_clip"] * ("open_clip." in body)
                   + ["import torch"] + ["import torch.nn.functional as F"] * ("F." in body)
                   + [f"from diffusers import {scheduler_class}, UNet2DModel", "from PIL import Image"])
    return "\n".join(standard) + "\n\n" + "\n".join(third_party)


def text_to_image_script(catalog: Catalog, fields: dict, dtype: torch.dtype, tab: str) -> str:
    """Text to image: the pipeline's own call, with the LoRA and the tiny decoder the image was made with."""
    sampler = fields["Sampler"]
    if sampler not in TEXT_TO_IMAGE_SCHEDULERS:
        raise ValueError(f"Unknown sampler {sampler!r} in the image's parameters.")
    width, height = (int(side) for side in fields["Size"].split("x"))
    scheduler_class = TEXT_TO_IMAGE_SCHEDULERS[sampler].__name__
    pipeline_class = "AutoPipelineForImage2Image" if "Denoising strength" in fields else "AutoPipelineForText2Image"
    imports, extras = [pipeline_class, scheduler_class], []
    if "Denoising strength" in fields:  # the picture, as the app resized it, and how much of it is noised
        start_settings = ("START = Path(__file__).with_name(\"start.png\")  # the picture it started from\n"
                          f"STRENGTH = {float(fields['Denoising strength'])!r}  # 0: the picture as it is; 1: noise\n")
        size_arguments = "    image=Image.open(START).convert(\"RGB\"),\n    strength=STRENGTH,"
    else:
        start_settings, size_arguments = "", f"    width={width},\n    height={height},"
    if fields.get("LoRA"):
        lora_source, lora_note = model_reference(catalog, fields["LoRA"])
        extras += [f"pipeline.load_lora_weights({lora_source!r}, adapter_name=\"lora\")  # {lora_note}",
                   f"pipeline.set_adapters([\"lora\"], [{float(fields.get('LoRA weight', 1))!r}])"]
    if fields.get("VAE"):
        vae_source, vae_note = model_reference(catalog, fields["VAE"])
        imports.append("AutoencoderTiny")
        extras += [f"# {vae_note}",
                   f"pipeline.vae = AutoencoderTiny.from_pretrained({vae_source!r}, torch_dtype=DTYPE)"]
    model_source, model_note = model_reference(catalog, fields["Model"])
    compel_imports, prompt_setup, prompt_arguments = prompt_code(fields, model_tokenizer(catalog, fields["Model"]))
    return TEXT_TO_IMAGE_SCRIPT.format(
        title=f"The {tab} tab's image: {fields['Model']}, {sampler}, {fields['Steps']} steps, seed {fields['Seed']}.",
        filename="make_image.py", peft=" peft" if fields.get("LoRA") else "", imports=", ".join(imports),
        model_source=model_source, model_note=model_note, dtype=dtype_name(dtype), scheduler_class=scheduler_class,
        sampler=sampler, extras="\n".join(extras), prompt_setup=prompt_setup, prompt_arguments=prompt_arguments,
        compel_imports=compel_imports, compel=" compel" if compel_imports else "", steps=int(fields["Steps"]),
        guidance_scale=float(fields["CFG scale"]), size_arguments=size_arguments, seed=int(fields["Seed"]),
        pipeline_class=pipeline_class, start_settings=start_settings,
        pil="\nfrom PIL import Image" if start_settings else "",
        path="\nfrom pathlib import Path" if start_settings else "")


def start_picture(parameters_text: str, picture: Image.Image, made: Image.Image) -> Image.Image:
    """The picture an Image to image run started from, as the app resized it for the image `made` (its size and
    mode): what the script reads as start.png. Stable Diffusion's pipeline gets it resized with Lanczos; a pixel
    model's input is converted to the model's channels, then resized bicubically (forward_process.prepare)."""
    fields = parse_parameters(parameters_text)
    if "Denoising strength" not in fields:
        raise ValueError("This image was not made from a picture.")
    if "Prompt" in fields or "CFG scale" in fields:  # Stable Diffusion
        return picture.convert("RGB").resize(made.size, Image.Resampling.LANCZOS)
    return picture.convert("L" if made.mode == "L" else "RGB").resize(made.size, Image.Resampling.BICUBIC)
