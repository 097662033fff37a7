"""Mode "lora": LoRA adapters (PEFT) on a frozen Stable Diffusion pipeline, as diffusers'
train_text_to_image_lora.py trains them: low-rank updates of the UNet's attention projections (to_q, to_k,
to_v, to_out.0) and, with train_text_encoder, of the text encoder's (q_proj, k_proj, v_proj, out_proj).

Saved in the diffusers LoRA format that `pipe.load_lora_weights(folder)` reads, with a lora.json naming the
base model. Checkpoints hold the adapters only, not the frozen base (gigabytes for Stable Diffusion).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from accelerate import Accelerator
from diffusers import DDPMScheduler, StableDiffusionPipeline
from diffusers.training_utils import cast_training_params
from diffusers.utils import convert_state_dict_to_diffusers, convert_unet_state_dict_to_peft
from peft import LoraConfig
from peft.utils import get_peft_model_state_dict, set_peft_model_state_dict
from safetensors.torch import load_file, save_file

from ..config import TrainingConfig
from .latent_diffusion import LatentDiffusionData, latent_diffusion_loss, load_base, sample_grid, weight_dtype

UNET_TARGETS = ["to_q", "to_k", "to_v", "to_out.0"]
TEXT_ENCODER_TARGETS = ["q_proj", "k_proj", "v_proj", "out_proj"]
LORA_FILE = "lora.json"  # beside the weights: what the adapters were trained on, for the app's catalog
CHECKPOINT_FILES = {"unet": "unet_lora.safetensors", "text_encoder": "text_encoder_lora.safetensors"}


class LoraModels(torch.nn.Module):
    """The UNet and, when its adapters train too, the text encoder: one module for accelerate to prepare."""

    def __init__(self, unet, text_encoder=None):
        super().__init__()
        self.unet = unet
        self.text_encoder = text_encoder

    def forward(self, noisy, timesteps, conditioning):
        """conditioning: the captions' embeddings, or their token ids when the text encoder trains too."""
        states = self.text_encoder(conditioning)[0] if self.text_encoder is not None else conditioning
        return self.unet(noisy, timesteps, states)


def start_from_saved_lora(unet, folder: Path) -> None:
    """Load the UNet adapters of a LoRA saved in diffusers' format into the fresh ones, so that training goes on
    from it (a distillation continued with other settings, say) instead of from Gaussian noise."""
    saved, _ = StableDiffusionPipeline.lora_state_dict(str(folder))
    weights = {key.removeprefix("unet."): value for key, value in saved.items() if key.startswith("unet.")}
    try:
        result = set_peft_model_state_dict(unet, convert_unet_state_dict_to_peft(weights))
    except RuntimeError as error:  # a size mismatch: another rank
        raise ValueError(f"{folder} holds no UNet adapters of this shape to start from (is lora_rank its rank?)."
                         ) from error
    if not weights or result.unexpected_keys:
        raise ValueError(f"{folder} holds no UNet adapters of this shape to start from.")


class LoraMode:
    def __init__(self, config: TrainingConfig, accelerator: Accelerator):
        self.config = config
        self.base = load_base(config.pretrained_model)
        self.noise_scheduler = DDPMScheduler.from_config(self.base.scheduler.config)
        dtype = weight_dtype(accelerator)
        for frozen in (self.base.unet, self.base.vae, self.base.text_encoder):
            frozen.requires_grad_(False).to(accelerator.device, dtype)
        adapter = dict(r=config.lora_rank, lora_alpha=config.lora_alpha, init_lora_weights="gaussian")
        self.base.unet.add_adapter(LoraConfig(**adapter, target_modules=UNET_TARGETS))
        text_encoder = None
        if config.train_text_encoder:
            text_encoder = self.base.text_encoder
            text_encoder.add_adapter(LoraConfig(**adapter, target_modules=TEXT_ENCODER_TARGETS))
        self.model = LoraModels(self.base.unet, text_encoder)
        if config.initial_lora:
            start_from_saved_lora(self.base.unet, Path(config.initial_lora))
        cast_training_params(self.model, dtype=torch.float32)  # adapters train in float32 over a low-precision base
        self.data = LatentDiffusionData(config, self.base, accelerator.device, cache_text=not config.train_text_encoder)
        self.dataset = self.data.dataset

    def trainable_parameters(self) -> list[torch.nn.Parameter]:
        return [parameter for parameter in self.model.parameters() if parameter.requires_grad]

    def describe(self) -> dict:
        return self.data.describe()

    def loss(self, model, batch: dict) -> torch.Tensor:
        caption_ids = self.data.dropped_caption_ids(batch, self.config.caption_dropout_prob).cpu()
        cached = self.data.embeddings is not None
        conditioning = (self.data.embeddings if cached else self.data.token_ids)[caption_ids]
        return latent_diffusion_loss(model, self.noise_scheduler, self.data.latents(batch),
                                     conditioning.to(batch["latent_mean"].device), self.config.snr_gamma)

    def sample_grid(self, model: LoraModels):
        return sample_grid(self.config, self.base, model.unet, self.base.text_encoder, self.data.captions[1:])

    def adapter_weights(self, model: LoraModels) -> dict[str, dict[str, torch.Tensor]]:
        """PEFT's state dicts of the adapters, per model that has them."""
        weights = {"unet": get_peft_model_state_dict(model.unet)}
        if model.text_encoder is not None:
            weights["text_encoder"] = get_peft_model_state_dict(model.text_encoder)
        return weights

    def register_checkpoint_hooks(self, accelerator: Accelerator, prepared) -> None:
        """Checkpoints store the adapters only; loading one puts them back into the prepared models."""

        def save_adapters(models, weights, output_dir):
            if accelerator.is_main_process:
                for name, state in self.adapter_weights(accelerator.unwrap_model(models[0])).items():
                    save_file({key: value.contiguous() for key, value in state.items()},
                              Path(output_dir) / CHECKPOINT_FILES[name])
            weights.clear()  # nothing else of the model: the base is frozen and reloads from its source

        def load_adapters(models, input_dir):
            model = accelerator.unwrap_model(models.pop())
            for name, part in (("unet", model.unet), ("text_encoder", model.text_encoder)):
                if part is not None:
                    set_peft_model_state_dict(part, load_file(Path(input_dir) / CHECKPOINT_FILES[name]))

        accelerator.register_save_state_pre_hook(save_adapters)
        accelerator.register_load_state_pre_hook(load_adapters)

    def save(self, model: LoraModels, output_dir: Path) -> Path:
        folder = output_dir / "lora"
        weights = self.adapter_weights(model)
        dtype = torch.float16 if self.config.save_precision == "fp16" else torch.float32
        layers = {name: convert_state_dict_to_diffusers({key: value.to(dtype) for key, value in state.items()})
                  for name, state in weights.items()}
        StableDiffusionPipeline.save_lora_weights(folder, unet_lora_layers=layers["unet"],
                                                  text_encoder_lora_layers=layers.get("text_encoder"))
        (folder / LORA_FILE).write_text(json.dumps({
            "base_model": self.config.pretrained_model, "rank": self.config.lora_rank,
            "alpha": self.config.lora_alpha, "text_encoder": self.config.train_text_encoder,
            "resolution": self.config.resolution}, indent=2))
        return folder
