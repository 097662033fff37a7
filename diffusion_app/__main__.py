"""Command line over the same service the app uses.

    python -m diffusion_app models
    python -m diffusion_app generate --model NAME --steps N --seed S --out DIR [--classes 3 7 --cfg-scale 3]
    python -m diffusion_app train --config FILE [--any_training_option VALUE ...]
    python -m diffusion_app bundle digits|openmoji|emoji-clip|emoji-t2i [--work-dir DIR]
    python -m diffusion_app publish-space OWNER/NAME [--dry-run] [--private] [--variable NAME=VALUE ...]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import publish_space
from .service.models.loading import ModelUnavailableError
from .core.metadata import save_png
from .service.generation.sampling import DEFAULT_CFG_SCALE, MAX_STEPS, SamplingRequest, sample
from .core.schedulers import UNCONDITIONAL_SCHEDULERS
from .service.startup import open_studio
from .settings import Settings, add_cli_arguments
from .training import config as training_config
from .training.bundled import BUNDLED_MODELS, build_bundled_model
from .training.train import train as run_training


def list_models(settings, _args) -> int:
    studio = open_studio(settings)
    for entry in studio.catalog.entries():
        where = "offline" if entry.available_offline() else "needs network"
        print(f"{entry.name:32} {entry.kind:18} {where:14} {entry.source}")
    return 0


def generate(settings, args) -> int:
    studio = open_studio(settings)
    classes = tuple(args.classes) if args.classes else None
    cfg_scale = args.cfg_scale if args.cfg_scale is not None else DEFAULT_CFG_SCALE if classes else 1.0
    request = SamplingRequest(model=args.model, num_images=args.num_images, steps=args.steps, seed=args.seed,
                              scheduler=args.scheduler, eta=args.eta, classes=classes, guidance_scale=cfg_scale)
    images, run = sample(studio, request)
    args.out.mkdir(parents=True, exist_ok=True)
    labels = request.labels or [None] * len(images)
    for image, seed, label in zip(images, run.seeds, labels):
        name = Path(args.model).name if label is None else f"{Path(args.model).name}-{run.class_names[label]}"
        print(save_png(image, args.out / f"{name}-{seed}.png"))
    print(f"{len(images)} image(s), seed {run.request.seed}, {run.seconds:.1f} s", file=sys.stderr)
    return 0


def train(_settings, args) -> int:
    folder = run_training(training_config.config_from_args(args))
    print(folder or "stopped; resume with --resume_from_checkpoint latest")
    return 0


def bundle(settings, args) -> int:
    print(build_bundled_model(args.name, args.work_dir, settings.models_dir))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m diffusion_app")
    add_cli_arguments(parser)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("models", help="list the catalog and what is available offline").set_defaults(run=list_models)
    gen = commands.add_parser("generate", help="sample a model to PNG files")
    gen.add_argument("--model", required=True)
    gen.add_argument("--steps", type=int, default=1000, help=f"1..{MAX_STEPS}")
    gen.add_argument("--seed", type=int, help="default: random (printed)")
    gen.add_argument("--num-images", type=int, default=1, help="per class with --classes")
    gen.add_argument("--classes", type=int, nargs="+", help="class-conditional models: the class indices to draw")
    gen.add_argument("--cfg-scale", type=float,
                     help=f"class-conditional models: classifier-free guidance, 1 is off (default {DEFAULT_CFG_SCALE:g})")
    gen.add_argument("--scheduler", choices=list(UNCONDITIONAL_SCHEDULERS), default="DDPM")
    gen.add_argument("--eta", type=float, default=0.0, help="DDIM only")
    gen.add_argument("--out", type=Path, default=Path("outputs"))
    gen.set_defaults(run=generate)
    trainer = commands.add_parser("train", help="train a pipeline in this process (see README: Training)")
    training_config.add_arguments(trainer)
    trainer.set_defaults(run=train)
    bundler = commands.add_parser("bundle", help="rebuild a bundled model from its packaged dataset")
    bundler.add_argument("name", choices=BUNDLED_MODELS)
    bundler.add_argument("--work-dir", type=Path, default=Path("data/bundle"), help="dataset and checkpoints")
    bundler.set_defaults(run=bundle)
    publisher = commands.add_parser("publish-space", help="upload this checkout to a Hugging Face Space")
    publish_space.add_arguments(publisher)
    publisher.set_defaults(run=lambda _settings, args: publish_space.run(args))
    args = parser.parse_args(argv)
    try:
        return args.run(Settings.from_env().with_cli_args(args), args)
    except (ValueError, ModelUnavailableError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
