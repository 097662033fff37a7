"""One frozen Settings object for the whole app, read from the environment and CLI flags.

Environment variables (all optional):
    DS_DEVICE           cpu | cuda | cuda:N          (default: cuda when available, else cpu)
    DS_DTYPE            float32 | float16 | bfloat16 (default: float16 on CUDA; on the CPU bfloat16 where it
                        is native, else float32: see hardware.py)
    DS_COMPILE          1 to torch.compile each UNet when it loads (warmed up then; default: off)
    DS_THREADS          torch intra-op threads (default: the physical cores)
    DS_DATA_DIR         where generated files and jobs live (default: ./data)
    DS_MODELS_DIR       bundled models, one save_pretrained folder each (default: ./models)
    DS_MODELS           extra catalog entries, "name=source;name=source" (hub id or local dir)
    DS_CACHE_MAX_MODELS how many pipelines stay loaded at once (default: 3)
    DS_CACHE_MAX_GB     memory budget for loaded pipelines in GiB (default: no byte limit)
    DS_ATTENTION_SLICING, DS_VAE_SLICING, DS_VAE_TILING, DS_CPU_OFFLOAD
                        1 to trade speed for memory with large models (see MemorySavers; default: off)
    DS_MAX_BATCH        largest number of images per request (default: 8)
    DS_OFFLINE          1 to never reach a model hub (HF_HUB_OFFLINE=1 means the same)
    DS_QUEUE_SIZE       most requests waiting in the queue; more are turned away (default: 64)
    DS_CONCURRENCY      generation requests run at once, shared by every tab (default: 1 per device)
    DS_MCP_SERVER       1 to also serve the generation tabs as MCP tools (GRADIO_MCP_SERVER means the same)
    DS_CLIP_CONFIGS     extra open_clip model configs for CLIP guidance: JSON files or folders, os.pathsep-separated
    DS_TRAINING_ENABLED 0 to switch the Training tab off (default: 1)
    DS_TRAINING_AUTH    "user:password[,user:password]": the Training tab asks for a login (default: open)
    DS_MAX_UPLOAD_MB    largest training upload, a folder's files together or one .zip (default: 500)
    DS_MAX_UPLOAD_IMAGES most files in one training upload (default: 20000)
    DS_MAX_TRAIN_STEPS  most training steps one job may ask for (default: 100000)
    DS_MAX_CONCURRENT_JOBS training jobs that run at the same time; the rest wait in order (default: 1)
    DS_ZEROGPU          1 to run as on a ZeroGPU Space (default: what the `spaces` package detects)
    DS_PRELOAD          ZeroGPU: models to load at start-up besides each tab's default, "name;name"
    DS_GPU_SECONDS_CAP  ZeroGPU: the longest GPU call a request may ask for, in seconds (default: 120)
    DS_PUBLIC           1 for a public server: catalog models only, jobs per visitor (default: 1 on a Space)
    DS_ADMINS           public server: user names that see every job and may unload models, "a,b"
    DS_MAX_JOBS_PER_VISITOR  public server: queued and running jobs one visitor may have (default: 2)
    DS_MAX_UPLOADS_PER_HOUR  public server: uploads (and hub datasets) one visitor may check an hour (default: 10)
    DS_ALLOW_HUB_DATASETS    1 to let visitors of a public server train on hub datasets (default: 0 there)
    DS_HISTORY_MAX_MB   the history's images, all visitors together; past it the oldest go (default: 500)
    DS_MAX_SWEEP_CELLS  the most cells one X/Y/Z sweep may have (default: 64)
    DS_RAY_ADDRESS ...  generation and training on a Ray cluster: see ray_settings.py
    GRADIO_SERVER_NAME / GRADIO_SERVER_PORT, as Gradio reads them.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from .hardware import default_dtype
from .ray_settings import RaySettings
from .storage import REPO_ROOT, default_data_dir
TRUE_WORDS = {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class MemorySavers:
    """diffusers' memory savers (MEMORY_SAVERS says what each does), applied when a pipeline loads."""

    attention_slicing: bool = False
    vae_slicing: bool = False
    vae_tiling: bool = False
    cpu_offload: bool = False


@dataclass(frozen=True)
class Settings:
    device: str = "cpu"
    devices: tuple[str, ...] = ()  # one generation worker on each (DS_DEVICES); empty: every visible GPU
    dtype: torch.dtype = torch.float32
    data_dir: Path = REPO_ROOT / "data"
    models_dir: Path = REPO_ROOT / "models"
    extra_models: tuple[tuple[str, str], ...] = ()
    cache_max_models: int = 3
    cache_max_bytes: int | None = None
    max_batch_size: int = 8
    offline: bool = False
    clip_configs: tuple[Path, ...] = ()
    memory: MemorySavers = MemorySavers()
    compile: bool = False
    threads: int | None = None
    host: str = "127.0.0.1"
    port: int = 7860
    share: bool = False
    queue_size: int = 64
    concurrency_limit: int = 1
    mcp_server: bool = False

    def __post_init__(self):
        if self.memory.cpu_offload and not self.device.startswith("cuda"):
            raise ValueError(f"Model CPU offload (DS_CPU_OFFLOAD, --cpu-offload) needs a CUDA device, "
                             f"not {self.device!r}.")
        if self.compile and self.memory.cpu_offload:
            raise ValueError("Compilation (DS_COMPILE) and model CPU offload (DS_CPU_OFFLOAD) do not combine: "
                             "offload moves the weights a compiled graph holds on to.")
        if self.compile and self.zerogpu:
            raise ValueError("ZeroGPU does not support torch.compile: leave DS_COMPILE off on a ZeroGPU Space.")
        if self.ray is not None and self.zerogpu:
            raise ValueError("A ZeroGPU Space lends its GPU to its own calls only, not to a Ray cluster: leave "
                             "DS_RAY_ADDRESS unset there.")
    training_enabled: bool = True
    training_auth: tuple[tuple[str, str], ...] = ()
    max_upload_mb: int = 500
    max_upload_images: int = 20000
    max_train_steps: int = 100000
    max_concurrent_jobs: int = 1
    zerogpu: bool = False  # generation runs inside @spaces.GPU calls; models load at start-up only
    preload: tuple[str, ...] = ()
    gpu_seconds_cap: int = 120
    public: bool = False  # visitors may be anyone: catalog models only, jobs belong to who started them
    space_id: str | None = None  # set on a Hugging Face Space, where visitors can sign in with their account
    admins: tuple[str, ...] = ()
    max_jobs_per_visitor: int = 2
    max_uploads_per_hour: int = 10
    allow_hub_datasets: bool = True
    history_max_mb: int = 500
    max_sweep_cells: int = 64
    ray: RaySettings | None = None  # generation replicas and training jobs on a Ray cluster

    @property
    def training_device(self) -> str:
        """Where training jobs run: ZeroGPU lends its GPU to generation calls only, so its jobs train on the CPU."""
        return "cpu" if self.zerogpu else self.device

    @property
    def local_models_dir(self) -> Path:
        """Models made on this machine (the demo model, finished training jobs)."""
        return self.data_dir / "models"

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> "Settings":
        env = os.environ if environ is None else environ
        zerogpu = flag(env, "DS_ZEROGPU", default=on_zerogpu())
        on_space = bool(env.get("SPACE_ID"))
        public = flag(env, "DS_PUBLIC", default=on_space)
        device = env.get("DS_DEVICE") or ("cuda" if zerogpu or torch.cuda.is_available() else "cpu")
        max_gb = env.get("DS_CACHE_MAX_GB")
        return cls(
            device=device,
            devices=tuple(name.strip() for name in env.get("DS_DEVICES", "").split(",") if name.strip()),
            dtype=parse_dtype(env["DS_DTYPE"]) if env.get("DS_DTYPE") else default_dtype(device),
            data_dir=Path(env.get("DS_DATA_DIR") or default_data_dir(env)).resolve(),
            models_dir=Path(env.get("DS_MODELS_DIR", REPO_ROOT / "models")).resolve(),
            extra_models=tuple(parse_model_spec(s) for s in env.get("DS_MODELS", "").split(";") if s.strip()),
            cache_max_models=int(env.get("DS_CACHE_MAX_MODELS", 3)),
            cache_max_bytes=int(float(max_gb) * 2**30) if max_gb else None,
            max_batch_size=int(env.get("DS_MAX_BATCH", 8)),
            offline=(env.get("DS_OFFLINE", "") or env.get("HF_HUB_OFFLINE", "")).lower() in TRUE_WORDS,
            clip_configs=tuple(Path(p).resolve() for p in env.get("DS_CLIP_CONFIGS", "").split(os.pathsep) if p),
            memory=MemorySavers(**{name: env.get(f"DS_{name.upper()}", "").lower() in TRUE_WORDS
                                   for name in MEMORY_SAVERS}),
            compile=env.get("DS_COMPILE", "").lower() in TRUE_WORDS,
            threads=positive_int(env["DS_THREADS"], "DS_THREADS") if env.get("DS_THREADS") else None,
            host=env.get("GRADIO_SERVER_NAME", "127.0.0.1"),
            port=int(env.get("GRADIO_SERVER_PORT", 7860)),
            queue_size=positive_int(env.get("DS_QUEUE_SIZE", 64), "DS_QUEUE_SIZE"),
            concurrency_limit=positive_int(env.get("DS_CONCURRENCY", 1), "DS_CONCURRENCY"),
            mcp_server=(env.get("DS_MCP_SERVER", "") or env.get("GRADIO_MCP_SERVER", "")).lower() in TRUE_WORDS,
            training_enabled=env.get("DS_TRAINING_ENABLED", "1").lower() in TRUE_WORDS,
            training_auth=parse_credentials(env.get("DS_TRAINING_AUTH", "")),
            max_upload_mb=int(env.get("DS_MAX_UPLOAD_MB", 500)),
            max_upload_images=int(env.get("DS_MAX_UPLOAD_IMAGES", 20000)),
            max_train_steps=int(env.get("DS_MAX_TRAIN_STEPS", 100000)),
            max_concurrent_jobs=int(env.get("DS_MAX_CONCURRENT_JOBS", 1)),
            zerogpu=zerogpu,
            preload=tuple(name.strip() for name in env.get("DS_PRELOAD", "").split(";") if name.strip()),
            gpu_seconds_cap=positive_int(env.get("DS_GPU_SECONDS_CAP", 120), "DS_GPU_SECONDS_CAP"),
            public=public,
            space_id=env.get("SPACE_ID") or None,
            admins=tuple(name.strip() for name in env.get("DS_ADMINS", "").split(",") if name.strip()),
            max_jobs_per_visitor=positive_int(env.get("DS_MAX_JOBS_PER_VISITOR", 2), "DS_MAX_JOBS_PER_VISITOR"),
            max_uploads_per_hour=positive_int(env.get("DS_MAX_UPLOADS_PER_HOUR", 10), "DS_MAX_UPLOADS_PER_HOUR"),
            allow_hub_datasets=flag(env, "DS_ALLOW_HUB_DATASETS", default=not public),
            history_max_mb=positive_int(env.get("DS_HISTORY_MAX_MB", 500), "DS_HISTORY_MAX_MB"),
            max_sweep_cells=positive_int(env.get("DS_MAX_SWEEP_CELLS", 64), "DS_MAX_SWEEP_CELLS"),
            ray=RaySettings.from_env(env),
        )

    def with_cli_args(self, args: argparse.Namespace) -> "Settings":
        """Apply the flags added by `add_cli_arguments`; flags win over the environment."""
        changes = {}
        for name in ("host", "port", "device", "data_dir", "models_dir"):
            value = getattr(args, name, None)
            if value is not None:
                changes[name] = value
        if savers := {name: True for name in MEMORY_SAVERS if getattr(args, name, False)}:
            changes["memory"] = replace(self.memory, **savers)
        if getattr(args, "share", False):
            changes["share"] = True
        if getattr(args, "offline", False):
            changes["offline"] = True
        if getattr(args, "mcp_server", False):
            changes["mcp_server"] = True
        if getattr(args, "compile", False):
            changes["compile"] = True
        if getattr(args, "ray", None):
            changes["ray"] = RaySettings.from_env(os.environ, address=args.ray)
        if getattr(args, "add_model", None):
            changes["extra_models"] = self.extra_models + tuple(parse_model_spec(s) for s in args.add_model)
        if "device" in changes and getattr(args, "dtype", None) is None:
            changes["dtype"] = default_dtype(changes["device"])
        if getattr(args, "dtype", None):
            changes["dtype"] = parse_dtype(args.dtype)
        return replace(self, **changes)


def add_cli_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", help="cpu, cuda or cuda:N (default: cuda when available)")
    parser.add_argument("--dtype", choices=sorted(DTYPES),
                        help="weights dtype (default: float16 on CUDA, bfloat16 on CPUs that compute it natively)")
    parser.add_argument("--data-dir", type=lambda p: Path(p).resolve(), help="generated files and jobs")
    parser.add_argument("--models-dir", type=lambda p: Path(p).resolve(), help="bundled model folders")
    for name, help_text in MEMORY_SAVERS.items():
        parser.add_argument(f"--{name.replace('_', '-')}", action="store_true", help=help_text)
    parser.add_argument("--add-model", action="append", metavar="NAME=SOURCE",
                        help="add a catalog entry: a hub id or a local save_pretrained folder (repeatable)")
    parser.add_argument("--offline", action="store_true", help="never reach a model hub")
    parser.add_argument("--compile", action="store_true",
                        help="torch.compile each UNet when it loads: faster steps after a slower first load")
    parser.add_argument("--mcp-server", action="store_true", help="also serve the generation tabs as MCP tools")
    parser.add_argument("--ray", metavar="ADDRESS",
                        help="generate and train on a Ray cluster: auto, local or a head's address (DS_RAY_ADDRESS)")


# Each saves accelerator memory for some speed.
MEMORY_SAVERS = {
    "attention_slicing": "compute attention in slices instead of PyTorch's fused SDPA kernel (very small GPUs)",
    "vae_slicing": "decode a batch of images one at a time",
    "vae_tiling": "decode large images in overlapping tiles",
    "cpu_offload": "keep each model on the CPU until it runs (accelerate's model offload; CUDA only)",
}
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def parse_dtype(name: str) -> torch.dtype:
    try:
        return DTYPES[name]
    except KeyError:
        raise ValueError(f"Unknown dtype {name!r}; use one of {', '.join(DTYPES)}.") from None


def flag(env, name: str, default: bool) -> bool:
    value = env.get(name, "").strip().lower()
    return value in TRUE_WORDS if value else default


def on_zerogpu() -> bool:
    """What the `spaces` package says: it reads SPACES_ZERO_GPU, which ZeroGPU Spaces set."""
    try:
        from spaces.config import Config
    except ImportError:
        return False
    return Config.zero_gpu


def positive_int(value, name: str) -> int:
    number = int(value)
    if number < 1:
        raise ValueError(f"{name} must be at least 1, got {value!r}.")
    return number


def parse_model_spec(spec: str) -> tuple[str, str]:
    """'name=source' -> (name, source); a bare source is named after itself."""
    name, sep, source = spec.strip().partition("=")
    if not sep:
        return name, name
    if not name or not source:
        raise ValueError(f"Model spec {spec!r} must look like NAME=SOURCE (a hub id or a local folder).")
    return name.strip(), source.strip()


def parse_credentials(text: str) -> tuple[tuple[str, str], ...]:
    """'user:password,user2:password2' -> ((user, password), ...); the password may hold colons."""
    pairs = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        user, sep, password = item.partition(":")
        if not sep or not user or not password:
            raise ValueError("DS_TRAINING_AUTH must look like USER:PASSWORD (several separated by commas).")
        pairs.append((user, password))
    return tuple(pairs)
