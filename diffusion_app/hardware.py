"""What this machine computes fast, read from the hardware rather than guessed: the defaults that follow.

bfloat16 is the fast path on CPUs that compute it natively (AVX-512 BF16 or AMX): a 2048x2048 matmul
runs 4x (AVX-512 BF16 on AMD EPYC) to 6x (AMX on Intel Xeon) faster than in float32. Elsewhere PyTorch
emulates it, slower than float32, so float32 stays the default there.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import psutil
import torch

logger = logging.getLogger(__name__)

NATIVE_BF16_FEATURES = ("avx512_bf16", "amx_bf16")


def cpu_has_native_bf16() -> bool:
    """True when the CPU has bfloat16 instructions, as PyTorch's own CPU feature detection reports them."""
    capabilities = torch.cpu.get_capabilities()
    return any(capabilities.get(feature) for feature in NATIVE_BF16_FEATURES)


def default_dtype(device: str) -> torch.dtype:
    """float16 on CUDA; on the CPU bfloat16 where it is native, else float32."""
    if device.startswith("cuda"):
        return torch.float16
    return torch.bfloat16 if cpu_has_native_bf16() else torch.float32


def default_mixed_precision(device: str) -> str:
    """The trainer's mixed precision for this device: bf16 where it is native (CPUs with AVX-512 BF16 or AMX,
    GPUs from Ampere on), fp16 on older GPUs, and no (float32) on CPUs that would only emulate bfloat16."""
    if device.startswith("cuda"):
        return "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "fp16"
    return "bf16" if cpu_has_native_bf16() else "no"


def mixed_precision_help(device: str) -> str:
    """What each mixed-precision choice does on this machine, for the Training tab."""
    if device.startswith("cuda"):
        return ("On this GPU: fp16 and bf16 halve activation memory and use the tensor cores (bf16 needs an "
                "Ampere or newer GPU); no trains in float32.")
    if cpu_has_native_bf16():
        return ("On this CPU (native bfloat16): bf16 trains faster than no (float32) with the same loss curve; "
                "fp16 is emulated on a CPU and slow.")
    return ("On this CPU (no native bfloat16): keep no (float32); bf16 and fp16 are emulated here and slower.")


def physical_cores() -> int:
    return psutil.cpu_count(logical=False) or psutil.cpu_count() or 1


def trainer_threads() -> int:
    """Threads of a training job on the CPU: one physical core fewer than the machine has, so that one stays
    with the app's requests."""
    return max(1, physical_cores() - 1)


def configure_threads(threads: int | None = None) -> str:
    """Set torch's threads for the app and return the line the app logs at start-up.

    Intra-op threads (those that split one convolution or matmul) default to the physical cores: hyper-threads
    share a core's vector units and only add contention. Inter-op threads run independent operators of one
    graph side by side, which eager diffusion models never do, so one is enough; Gradio's own threads serve
    concurrent requests.
    """
    intra = threads or physical_cores()
    torch.set_num_threads(intra)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # only possible before the first parallel operator; keep what is set
        pass
    return (f"torch threads: {torch.get_num_threads()} intra-op, {torch.get_num_interop_threads()} inter-op on "
            f"{physical_cores()} physical cores; a CPU training job gets {trainer_threads()} at lower priority")


@dataclass(frozen=True)
class FirstClick:
    """The generation tabs' starting values on one kind of device: what a click at the defaults costs.

    Chosen here, in one place, so a new user's first click on a 2-core CPU gives a meaningful image in
    seconds (benchmarks/bench_first_click.py measures it) while a GPU starts at counts that show quality.
    `hint` is shown beside the counts so a user knows they are sized for speed, not the tab's best.
    """

    hint: str
    num_images: int
    unconditional_steps: int
    ddim_steps: int
    digits_steps: int
    samples_per_digit: int
    guidance_steps: int
    colour_guidance_scale: float  # the push adds up over the steps: the same total at either step count
    text2img_steps: int
    image_to_image_steps: int


CPU_FIRST_CLICK = FirstClick(
    hint="Starts low enough for a quick first image on this CPU; raise it for quality.",
    num_images=4,
    unconditional_steps=50,
    ddim_steps=25,
    digits_steps=20,
    samples_per_digit=2,
    guidance_steps=25,
    colour_guidance_scale=5,
    text2img_steps=20,
    image_to_image_steps=25,
)

GPU_FIRST_CLICK = FirstClick(
    hint="Sized for this GPU; on a CPU the app starts lower for a quick first image.",
    num_images=4,
    unconditional_steps=100,
    ddim_steps=50,
    digits_steps=50,
    samples_per_digit=4,
    guidance_steps=50,
    colour_guidance_scale=2.5,
    text2img_steps=25,
    image_to_image_steps=50,
)


def first_click(device: str) -> FirstClick:
    """The generation tabs' defaults for the device the app runs on."""
    return GPU_FIRST_CLICK if device.startswith("cuda") else CPU_FIRST_CLICK
