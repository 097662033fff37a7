"""Fresh schedulers per request, built from a cached pipeline's scheduler config.

A scheduler keeps state from `set_timesteps`, so one shared between requests would corrupt
concurrent runs; `SchedulerClass.from_config(config)` is cheap and isolates each request.
"""

from __future__ import annotations

from diffusers import (
    DDIMScheduler,
    DDPMScheduler,
    DPMSolverMultistepScheduler,
    EulerAncestralDiscreteScheduler,
    EulerDiscreteScheduler,
    LCMScheduler,
    PNDMScheduler,
    SchedulerMixin,
    TCDScheduler,
    UniPCMultistepScheduler,
)

UNCONDITIONAL_SCHEDULERS: dict[str, type[SchedulerMixin]] = {
    "DDPM": DDPMScheduler,
    "DDIM": DDIMScheduler,
}

# Stable Diffusion samplers, named as other Stable Diffusion UIs name them in PNG parameters. LCM and TCD take
# 2 to 8 steps at CFG scale 1 on a model distilled for them (an LCM-LoRA); on others they draw poorly.
TEXT_TO_IMAGE_SCHEDULERS: dict[str, type[SchedulerMixin]] = {
    "DPM++ 2M": DPMSolverMultistepScheduler,
    "Euler a": EulerAncestralDiscreteScheduler,
    "Euler": EulerDiscreteScheduler,
    "DDIM": DDIMScheduler,
    "PNDM": PNDMScheduler,
    "UniPC": UniPCMultistepScheduler,
    "LCM": LCMScheduler,
    "TCD": TCDScheduler,
}


def make_scheduler(name: str, config, choices: dict[str, type[SchedulerMixin]] = UNCONDITIONAL_SCHEDULERS):
    try:
        scheduler_class = choices[name]
    except KeyError:
        raise ValueError(f"Unknown scheduler {name!r}; choose one of {', '.join(choices)}.") from None
    return scheduler_class.from_config(config)
