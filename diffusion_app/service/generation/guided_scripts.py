"""The loops of the guidance tabs, written out for Show the code (service/generation/guidance.py and
clip_guidance.py as a reader would write them in a notebook): the guided step every k-th step within a range,
with colour's loss, or CLIP's over augmented cutouts of x0 embedded by an open_clip model.

A CLIP model is written as the app loads it (service/models/clip_models.py): a CLIP model folder (the bundled
emoji-clip) by its folder, a pretrained tag by open_clip's architecture and tag, and a checkpoint file, or an
architecture registered from a config file, by its file name, to be put beside the script: the image's
parameters name the file, not where it lay on the machine that made the image.
"""

from __future__ import annotations

from pathlib import Path

import open_clip
from ..models.clip_models import LOCAL_WEIGHTS, clip_config_files
from .guidance import OBJECTIVE_SEED_OFFSET

GUIDED_STEP = '''\
    if index % EVERY == 0 and START * len(timesteps) <= index < END * len(timesteps):
        # Guidance: move x_t so that the predicted clean image x0 comes closer to the {goal}. Any noise this
        # step draws comes from a scratch generator, so the image's own generator advances as unguided.
        with torch.set_grad_enabled(METHOD == "exact"):
            sample = sample.detach().requires_grad_(METHOD == "exact")
            noise = unet(sample.to(DTYPE), timestep).sample.float()
            x0 = scheduler.step(noise, timestep, sample, generator=scratch{step_options}).pred_original_sample
        if METHOD == "fast":  # the gradient with respect to x0, carried to x_t by x0's formula with eps fixed
            x0 = x0.detach().requires_grad_()
        loss = {loss} * SCALE
        alpha_bar = scheduler.alphas_cumprod[int(timestep)].item()
        if METHOD == "exact":  # through the UNet itself
            (gradient,) = torch.autograd.grad(loss, sample)
        else:
            (gradient,) = torch.autograd.grad(loss, x0)
            gradient = gradient / alpha_bar ** 0.5
        sample, noise = (sample - {weight}gradient).detach(), noise.detach()
    else:
        with torch.no_grad():
            noise = unet(sample.to(DTYPE), timestep).sample.float()'''

COLOUR_TARGET = '''\
# The colour in [-1, 1], as the model's pixels are (its luminance for a grayscale model).
rgb = Image.new("RGB", (1, 1), COLOUR)
if unet.config.in_channels == 3:
    target = rgb.getpixel((0, 0))
else:
    target = (rgb.convert("L").getpixel((0, 0)),)
TARGET = torch.tensor([value / 255 for value in target]).view(1, -1, 1, 1) * 2 - 1
'''

CLIP_LOSS = '''\
# The CLIP model, and the prompt's embedding: the direction x0's cutouts are pulled toward.
{load_clip}
clip.eval().requires_grad_(False)
with torch.no_grad():
    text = F.normalize(clip.encode_text(tokenizer([PROMPT])).float(), dim=-1)
size = clip.visual.preprocess_cfg["size"]
CLIP_SIZE = (size, size) if isinstance(size, int) else tuple(size)
MEAN = torch.tensor(clip.visual.preprocess_cfg["mean"]).view(1, -1, 1, 1)
STD = torch.tensor(clip.visual.preprocess_cfg["std"]).view(1, -1, 1, 1)
# The cutouts' random numbers: a stream of their own, apart from the image's noise.
cutout_generator = torch.Generator("cpu").manual_seed({seed_offset} + SEED)


def cutouts(images):
    """CUTOUTS views of the image, each one affine resampling: a random crop of 1/4 to all of its area and an
    aspect from 3/4 to 4/3, rotated by up to 5 degrees and flipped half of the time."""
    draws = torch.rand(CUTOUTS, 6, generator=cutout_generator)
    area = 0.25 + draws[:, 0] * 0.75
    aspect = torch.exp(math.log(3 / 4) + draws[:, 1] * math.log(16 / 9))
    width = (area * aspect).sqrt().clamp(max=1)  # fractions of the image's width and height
    height = (area / aspect).sqrt().clamp(max=1)
    centre_x = (draws[:, 2] * 2 - 1) * (1 - width)  # the crop stays inside the image
    centre_y = (draws[:, 3] * 2 - 1) * (1 - height)
    angle = torch.deg2rad((draws[:, 4] * 2 - 1) * 5.0)
    flip = torch.where(draws[:, 5] < 0.5, -1.0, 1.0)
    theta = torch.stack([
        torch.stack([width * angle.cos() * flip, -width * angle.sin(), centre_x], dim=1),
        torch.stack([height * angle.sin() * flip, height * angle.cos(), centre_y], dim=1),
    ], dim=1)
    grid = F.affine_grid(theta, [CUTOUTS, 3, *CLIP_SIZE], align_corners=False)
    return F.grid_sample(images.repeat_interleave(CUTOUTS, dim=0), grid, mode="bilinear",
                         padding_mode="reflection", align_corners=False)


def clip_loss(x0):
    """The mean spherical distance between the CLIP embeddings of x0's cutouts and the prompt's."""
    images = ((x0 + 1) / 2).expand(-1, 3, -1, -1)  # [0, 1]; a grayscale image as RGB
    embeddings = F.normalize(clip.encode_image((cutouts(images) - MEAN) / STD).float(), dim=-1)
    return (embeddings - text).norm(dim=-1).div(2).arcsin().pow(2).mul(2).mean()


'''

GUIDED_LOOP = '''\
scratch = torch.Generator("cpu")

timesteps = scheduler.timesteps
for index, timestep in enumerate(timesteps):
'''


def guidance_settings(fields: dict) -> str:
    """The constants every guided script starts with: the scale, the method and the steps it guides."""
    start, end = (float(part) for part in fields.get("Guidance range", "0-1").split("-"))
    return (f"SCALE = {float(fields['Guidance scale'])!r}  # 0 leaves the unguided image\n"
            f"METHOD = {fields['Guidance method']!r}  # fast: the gradient at x0; exact: through the UNet\n"
            f"EVERY, START, END = {int(fields.get('Guidance every', 1))}, {start!r}, {end!r}"
            f"  # guide every k-th step in this fraction of them\n")


def colour_guidance(fields: dict, step_options: str) -> tuple[str, str]:
    """(settings, loop) of a colour-guided image."""
    settings = f"COLOUR = {fields['Colour']!r}\n" + guidance_settings(fields)
    step = GUIDED_STEP.format(goal="colour", step_options=step_options, loss="(x0 - TARGET).abs().mean()",
                              weight="")
    return settings, COLOUR_TARGET + GUIDED_LOOP + step


def clip_guidance(fields: dict, step_options: str, clip_folders: dict[str, Path],
                  clip_configs: tuple[Path, ...], checkout: Path) -> tuple[str, str]:
    """(settings, loop) of a CLIP-guided image; the gradient is weighted by sqrt(alpha_bar), so the
    steps where x0 is still a blur steer less."""
    architecture, _, weights = fields["CLIP model"].partition("/")
    settings = (f"PROMPT = {fields.get('Prompt', '')!r}\n" + guidance_settings(fields)
                + f"CUTOUTS = {int(fields['Cutouts'])}  # augmented views of x0 that CLIP embeds per guided step\n")
    if architecture in clip_folders and weights == LOCAL_WEIGHTS:
        folder = clip_folders[architecture].resolve()
        shown = folder.relative_to(checkout) if folder.is_relative_to(checkout) else folder
        settings += f"CLIP_MODEL = 'local-dir:{shown}'  # {architecture}: a CLIP model folder (open_clip's local-dir)\n"
        load_clip = "clip = open_clip.create_model(CLIP_MODEL)\ntokenizer = open_clip.get_tokenizer(CLIP_MODEL)"
    else:
        settings += clip_source_settings(architecture, weights, clip_configs)
        load_clip = ("clip = open_clip.create_model(ARCHITECTURE, pretrained=str(WEIGHTS)"
                     f"{quick_gelu(architecture, weights)})\ntokenizer = open_clip.get_tokenizer(ARCHITECTURE)")
    loss = CLIP_LOSS.format(load_clip=load_clip, seed_offset=OBJECTIVE_SEED_OFFSET)
    step = GUIDED_STEP.format(goal="prompt", step_options=step_options, loss="clip_loss(x0)",
                              weight="alpha_bar ** 0.5 * ")
    return settings, loss + GUIDED_LOOP + step


def clip_source_settings(architecture: str, weights: str, clip_configs: tuple[Path, ...]) -> str:
    """ARCHITECTURE and WEIGHTS: an open_clip name and tag, or files put beside the script."""
    settings = ""
    config = clip_config_files(clip_configs).get(architecture)
    if config is not None:  # an architecture of the app's own, from DS_CLIP_CONFIGS
        settings += (f"CONFIG = Path(__file__).with_name({config.name!r})  # the open_clip config of {architecture}:"
                     f" put it beside this script\nopen_clip.add_model_config(CONFIG)\n")
    settings += f"ARCHITECTURE = {architecture!r}\n"
    if open_clip.get_pretrained_cfg(architecture, weights):
        return settings + f"WEIGHTS = {weights!r}  # open_clip's pretrained tag: downloaded on first use\n"
    return settings + (f"WEIGHTS = Path(__file__).with_name({weights!r})  # the checkpoint the image was made with:"
                       " put it beside this script\n")


def quick_gelu(architecture: str, weights: str) -> str:
    """force_quick_gelu for a pretrained tag trained with QuickGELU on an architecture named without it, as the
    app loads it."""
    return ", force_quick_gelu=True" if open_clip.get_pretrained_cfg(architecture, weights).get("quick_gelu") else ""
