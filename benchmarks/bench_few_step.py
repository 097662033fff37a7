"""Few-step text to image: the app with an LCM-LoRA at 4 LCM steps and CFG 1 (with the VAE's decode, and with
a tiny autoencoder's previews every step and final decode) against a plain diffusers `pipe(...)` at 25 steps with
classifier-free guidance, on one cached pipeline, in one process.

    python benchmarks/bench_few_step.py                      # SD 1.5's architecture at 512 px (random weights)
    python benchmarks/bench_few_step.py --tiny --size 64     # a quick run on a tiny pipeline

Both are random-weight pipelines built here (tiny_sd.py) with a random rank-64 LCM-LoRA, as
latent-consistency/lcm-lora-sdv1-5 is, and a random AutoencoderTiny of TAESD's architecture, as madebyollin/taesd
is: the time per image does not depend on what the weights learned. Prints seconds per image and their ratios;
exits 1 when the LCM + TAESD ratio is above 0.12.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import diffusion_app  # noqa: F401  (first: lets diffusers import where torchvision is CPU-incompatible)

import argparse
import json
import tempfile

import torch
from diffusers import AutoencoderTiny, StableDiffusionPipeline
from peft import LoraConfig
from peft.utils import get_peft_model_state_dict

from diffusion_app.catalog import TEXT_TO_IMAGE, TINY_AUTOENCODER_FILE, Catalog, entry_from_folder, entry_from_spec
from diffusion_app.service.generation.text2img import TextToImageRequest, TextToImageRun
from diffusion_app.service.studio import Studio
from diffusion_app.settings import Settings
from diffusion_app.tiny_sd import build_sd15_architecture_pipeline, build_tiny_sd_pipeline
from diffusion_app.training.modes.lora import LORA_FILE, UNET_TARGETS
from measure import run_interleaved, seconds

RATIO_TARGET = 0.12
PROMPT = "a lighthouse on a cliff at dawn, oil painting"


def random_lcm_lora(base: Path, folder: Path, rank: int) -> Path:
    """A rank-`rank` LoRA on the UNet's attention with random weights, described as an LCM-LoRA."""
    pipeline = StableDiffusionPipeline.from_pretrained(base)
    pipeline.unet.add_adapter(LoraConfig(r=rank, lora_alpha=rank, init_lora_weights=False,
                                         target_modules=UNET_TARGETS))
    StableDiffusionPipeline.save_lora_weights(folder, unet_lora_layers=get_peft_model_state_dict(pipeline.unet))
    (folder / LORA_FILE).write_text(json.dumps({"base_model": str(base.resolve()), "distilled": {
        "scheduler": "LCMScheduler", "original_inference_steps": 50, "num_inference_steps": 4,
        "guidance_scale": 1.0}}))
    return folder


def random_taesd(base: Path, folder: Path) -> Path:
    """TAESD's architecture (diffusers' AutoencoderTiny defaults) with random weights, described as base's."""
    torch.manual_seed(0)
    AutoencoderTiny().save_pretrained(folder)
    (folder / TINY_AUTOENCODER_FILE).write_text(json.dumps({"base_model": str(base.resolve())}))
    return folder


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="a tiny random pipeline instead of SD 1.5's architecture")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=1, help="timed runs per case, interleaved")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32", help="float32, float16 or bfloat16")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-few-step-"))
    base = (build_tiny_sd_pipeline(work / "base", seed=0) if args.tiny
            else build_sd15_architecture_pipeline(work / "base", seed=0))
    lora = entry_from_folder(random_lcm_lora(base, work / "lcm-lora", rank=64), "lcm-lora")
    taesd = entry_from_folder(random_taesd(base, work / "taesd"), "taesd")
    settings = Settings(data_dir=work / "data", offline=True, device=args.device, dtype=getattr(torch, args.dtype))
    studio = Studio(settings,
                    Catalog([entry_from_spec("base", str(base), hub_kind=TEXT_TO_IMAGE), lora, taesd]))
    pipe = studio.pipeline("base", TEXT_TO_IMAGE)
    sampling = lora.few_step

    def plain() -> list:
        return pipe(PROMPT, num_inference_steps=25, guidance_scale=7.5, width=args.size, height=args.size,
                    generator=torch.Generator().manual_seed(0)).images  # the app's generators are CPU ones too

    def app(**decoder) -> list:
        run = TextToImageRun(studio, TextToImageRequest(
            "base", PROMPT, steps=sampling.steps, guidance_scale=sampling.guidance_scale, scheduler=sampling.sampler,
            lora="lcm-lora", width=args.size, height=args.size, seed=0, **decoder), preview_every=1)
        for _ in run:
            pass
        return run.images

    def app_with_taesd() -> list:
        return app(tiny_autoencoder="taesd", tiny_final_decode=True)

    app_with_taesd()  # loads the LoRA and TAESD into the cache, as the first request on a server does
    times, _ = run_interleaved({"plain": plain, "app": app, "app + TAESD": app_with_taesd}, args.repeats)
    plain_seconds = min(times["plain"])
    ratio = min(times["app + TAESD"]) / plain_seconds
    print(f"{'tiny pipeline' if args.tiny else 'SD 1.5 architecture'} at {args.size} px on {studio.settings.device}:")
    print(f"  plain diffusers, 25 PNDM steps + CFG 7.5: {seconds(plain_seconds)} per image")
    few_steps = f"LCM-LoRA at {sampling.steps} {sampling.sampler} steps, CFG {sampling.guidance_scale:g}"
    print(f"  the app, {few_steps}, a linear preview every step, the VAE's decode: {seconds(min(times['app']))} per "
          f"image, {min(times['app']) / plain_seconds:.3f}x")
    print(f"  the app, {few_steps}, TAESD's previews every step and decode: {seconds(min(times['app + TAESD']))} per "
          f"image, {ratio:.3f}x (target <= {RATIO_TARGET}x) {'ok' if ratio <= RATIO_TARGET else 'MISSED'}")
    return 0 if ratio <= RATIO_TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
