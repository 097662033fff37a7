"""Mode "lcm-lora": latent consistency distillation of a Stable Diffusion pipeline into a LoRA, as diffusers'
train_lcm_distill_lora_sd example does it (Luo et al. 2023, "LCM-LoRA"), with the pipeline as its own teacher.

Each step noises a latent to a timestep t_n of a coarse grid (lcm_solver_steps of the training timesteps), lets
the teacher (the UNet with its adapters switched off) take one classifier-free-guided DDIM step to t_{n-1},
and asks the student (the UNet with adapters) to map both points to the same clean latent. The consistency
function is the LCM scheduler's parametrisation, c_skip(t) x_t + c_out(t) x0(x_t), so that LCMScheduler
samples the result in 2 to 8 steps at guidance scale 1 (the guidance is distilled in).

Saved like a LoRA, with lora.json saying it is an LCM-LoRA and the settings it samples with.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import torch
from accelerate import Accelerator
from diffusers import LCMScheduler

from ..config import TrainingConfig
from .latent_diffusion import sample_grid
from .lora import LORA_FILE, LoraModels, LoraMode

SIGMA_DATA = 0.5  # the boundary condition's scale, as LCMScheduler has it
TIMESTEP_SCALING = 10.0
SAMPLE_STEPS = 4  # what lora.json recommends, and what the sample grids use


def boundary_scalings(timesteps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """c_skip and c_out of the consistency function at these timesteps (c_skip -> 1, c_out -> 0 at t = 0)."""
    scaled = timesteps.float() * TIMESTEP_SCALING
    c_skip = SIGMA_DATA**2 / (scaled**2 + SIGMA_DATA**2)
    c_out = scaled / (scaled**2 + SIGMA_DATA**2) ** 0.5
    return c_skip.view(-1, 1, 1, 1), c_out.view(-1, 1, 1, 1)


def clean_and_noise(output: torch.Tensor, noisy: torch.Tensor, alpha_bar: torch.Tensor,
                    prediction_type: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The clean latent and the noise a UNet's output implies, for epsilon or v prediction."""
    signal, noise_level = alpha_bar.sqrt(), (1 - alpha_bar).sqrt()
    if prediction_type == "epsilon":
        return (noisy - noise_level * output) / signal, output
    if prediction_type == "v_prediction":
        return signal * noisy - noise_level * output, signal * output + noise_level * noisy
    raise ValueError(f"LCM distillation supports epsilon and v_prediction models, not {prediction_type!r}.")


class LcmLoraMode(LoraMode):
    def __init__(self, config: TrainingConfig, accelerator: Accelerator):
        super().__init__(config, accelerator)
        scheduler = self.noise_scheduler.config
        if scheduler.num_train_timesteps % config.lcm_solver_steps:
            raise ValueError(f"lcm_solver_steps ({config.lcm_solver_steps}) must divide the model's "
                             f"{scheduler.num_train_timesteps} training timesteps.")
        self.prediction_type = scheduler.prediction_type
        self.skip = scheduler.num_train_timesteps // config.lcm_solver_steps
        # The solver's grid, as LCMScheduler's original_inference_steps grid: skip - 1, 2 * skip - 1, ...
        self.solver_timesteps = torch.arange(1, config.lcm_solver_steps + 1) * self.skip - 1
        self.alphas_cumprod = self.noise_scheduler.alphas_cumprod.float()

    def alpha_bar(self, timesteps: torch.Tensor, device) -> torch.Tensor:
        return self.alphas_cumprod[timesteps.cpu()].to(device).view(-1, 1, 1, 1)

    def loss(self, model: LoraModels, batch: dict) -> torch.Tensor:
        latents = self.data.latents(batch).float()
        device, count = latents.device, len(latents)
        captions = self.data.embeddings[batch["caption_ids"].cpu()].to(device)
        empty = self.data.embeddings[torch.zeros(count, dtype=torch.long)].to(device)
        index = torch.randint(0, self.config.lcm_solver_steps, (count,))
        start = self.solver_timesteps[index]
        previous = (start - self.skip).clamp(min=0)
        noisy = self.noise_scheduler.add_noise(latents, torch.randn_like(latents), start.to(device))
        guidance = torch.empty(count, 1, 1, 1, device=device).uniform_(self.config.lcm_guidance_min,
                                                                      self.config.lcm_guidance_max)
        start_alpha, previous_alpha = self.alpha_bar(start, device), self.alpha_bar(previous, device)

        student = model(noisy, start.to(device), captions).sample.float()
        c_skip, c_out = boundary_scalings(start.to(device))
        prediction = c_skip * noisy + c_out * clean_and_noise(student, noisy, start_alpha, self.prediction_type)[0]

        with torch.no_grad():
            self.base.unet.disable_adapters()
            try:
                both = model(torch.cat([noisy, noisy]), torch.cat([start, start]).to(device),
                             torch.cat([captions, empty])).sample.float()
            finally:
                self.base.unet.enable_adapters()
            conditional, unconditional = both.chunk(2)
            cond_clean, cond_noise = clean_and_noise(conditional, noisy, start_alpha, self.prediction_type)
            uncond_clean, uncond_noise = clean_and_noise(unconditional, noisy, start_alpha, self.prediction_type)
            guided_clean = uncond_clean + guidance * (cond_clean - uncond_clean)
            guided_noise = uncond_noise + guidance * (cond_noise - uncond_noise)
            solved = previous_alpha.sqrt() * guided_clean + (1 - previous_alpha).sqrt() * guided_noise

            target_output = model(solved, previous.to(device), captions).sample.float()
            c_skip, c_out = boundary_scalings(previous.to(device))
            target_clean = clean_and_noise(target_output, solved, previous_alpha, self.prediction_type)[0]
            target = c_skip * solved + c_out * target_clean
        c = self.config.huber_c
        return (torch.sqrt((prediction - target) ** 2 + c**2) - c).mean()

    def sample_grid(self, model: LoraModels):
        settings = replace(self.config, sample_inference_steps=SAMPLE_STEPS, validation_guidance_scale=1.0)
        return sample_grid(settings, self.base, model.unet, self.base.text_encoder, self.data.captions[1:],
                           scheduler=LCMScheduler.from_config(self.base.scheduler.config,
                                                              original_inference_steps=self.config.lcm_solver_steps))

    def save(self, model: LoraModels, output_dir: Path) -> Path:
        folder = super().save(model, output_dir)
        described = json.loads((folder / LORA_FILE).read_text())
        described["distilled"] = {"scheduler": "LCMScheduler", "original_inference_steps": self.config.lcm_solver_steps,
                                  "num_inference_steps": SAMPLE_STEPS, "guidance_scale": 1.0}
        (folder / LORA_FILE).write_text(json.dumps(described, indent=2))
        return folder
