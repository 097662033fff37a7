"""Training modes: what is trained and how its loss is computed, around the one loop of training/train.py.

A mode is built from the TrainingConfig and the Accelerator, and gives the loop:

    model                      the module accelerate prepares (a UNet, a CLIP model, a VAE, a tiny autoencoder)
    dataset                    what the dataloader batches
    trainable_parameters()     what the optimizer and the EMA update (all of the model, or LoRA adapters)
    describe()                 what the "started" progress line says about the data
    loss(model, batch)         the training loss of one batch
    sample_grid(model)         a picture of how training goes (None when the mode has none)
    save(model, output_dir)    the final model folder, in the format its users load

A mode may also `register_checkpoint_hooks(accelerator, model)` to choose what a checkpoint stores (LoRA
saves its adapters, not the frozen base).
"""

from __future__ import annotations

import importlib

MODES = {
    "ddpm": ("ddpm", "DDPMMode"),
    "text-to-image": ("text_to_image", "TextToImageMode"),
    "lora": ("lora", "LoraMode"),
    "lcm-lora": ("lcm_lora", "LcmLoraMode"),
    "clip": ("clip", "ClipMode"),
    "vae": ("vae", "VAEMode"),
    "tiny-vae": ("tiny_vae", "TinyVAEMode"),
}


def build_mode(config, accelerator):
    """The mode the config names; its module is imported only when used (LoRA needs peft, CLIP open_clip)."""
    module_name, class_name = MODES[config.mode]
    module = importlib.import_module(f"{__name__}.{module_name}")
    return getattr(module, class_name)(config, accelerator)
