"""Command line over the same service the app uses.

    python -m diffusion_app models
    python -m diffusion_app generate --model NAME --steps N --seed S --out DIR
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .service.loading import ModelUnavailableError
from .service.metadata import save_png
from .service.sampling import MAX_STEPS, SamplingRequest, sample
from .service.schedulers import UNCONDITIONAL_SCHEDULERS
from .service.studio import open_studio
from .settings import Settings, add_cli_arguments


def list_models(studio, _args) -> int:
    for entry in studio.catalog.entries():
        where = "offline" if entry.available_offline() else "needs network"
        print(f"{entry.name:32} {entry.kind:18} {where:14} {entry.source}")
    return 0


def generate(studio, args) -> int:
    request = SamplingRequest(model=args.model, num_images=args.num_images, steps=args.steps,
                              seed=args.seed, scheduler=args.scheduler, eta=args.eta)
    images, run = sample(studio, request)
    args.out.mkdir(parents=True, exist_ok=True)
    for image, seed in zip(images, run.seeds):
        path = save_png(image, args.out / f"{Path(args.model).name}-{seed}.png")
        print(path)
    print(f"{len(images)} image(s), seed {run.request.seed}, {run.seconds:.1f} s", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m diffusion_app")
    add_cli_arguments(parser)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("models", help="list the catalog and what is available offline").set_defaults(run=list_models)
    gen = commands.add_parser("generate", help="sample an unconditional model to PNG files")
    gen.add_argument("--model", required=True)
    gen.add_argument("--steps", type=int, default=1000, help=f"1..{MAX_STEPS}")
    gen.add_argument("--seed", type=int, help="default: random (printed)")
    gen.add_argument("--num-images", type=int, default=1)
    gen.add_argument("--scheduler", choices=list(UNCONDITIONAL_SCHEDULERS), default="DDPM")
    gen.add_argument("--eta", type=float, default=0.0, help="DDIM only")
    gen.add_argument("--out", type=Path, default=Path("outputs"))
    gen.set_defaults(run=generate)
    args = parser.parse_args(argv)
    studio = open_studio(Settings.from_env().with_cli_args(args))
    try:
        return args.run(studio, args)
    except (ValueError, ModelUnavailableError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
