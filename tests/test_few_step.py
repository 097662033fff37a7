"""Few-step sampling: the LCM and TCD samplers, LCM-LoRAs distilled by the trainer (mode lcm-lora) and listed
with their settings, and the Text to image tab's Fast preset."""

from __future__ import annotations

import shutil
from dataclasses import replace

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from conftest import TINY_LCM_LORA, TINY_SD_MODEL
from diffusion_app.service.jobs.manager import FINISHED, JobManager
from diffusion_app.service.jobs.options import LCM_LORA, presets
from test_jobs import wait_for_status
from text_training_data import squares_folder
from diffusion_app.catalog import LCM_SAMPLING, LORA, TEXT_TO_IMAGE
from diffusion_app.service.generation.text2img import TextToImageRequest, generate
from diffusion_app.training.config import TrainingConfig
from diffusion_app.training.modes.lcm_lora import boundary_scalings, clean_and_noise
from diffusion_app.training.train import train
from diffusion_app.ui.few_step import fast_preset, settings_for_lora


def test_an_lcm_lora_is_listed_for_its_base_with_the_settings_it_samples_with(studio, models_dir):
    entry = studio.catalog.get(TINY_LCM_LORA)
    assert entry.kind == LORA and entry.few_step == LCM_SAMPLING
    assert entry.base_model == studio.catalog.get(TINY_SD_MODEL).source
    assert studio.catalog.few_step_loras(entry.base_model) == [entry]


@pytest.mark.parametrize("sampler", ["LCM", "TCD"])
def test_the_lcm_lora_changes_what_the_few_step_samplers_draw(studio, sampler):
    def image(weight: float) -> np.ndarray:
        request = TextToImageRequest(model=TINY_SD_MODEL, prompt="a red square", steps=4, guidance_scale=1.0,
                                     width=64, height=64, seed=3, scheduler=sampler, lora=TINY_LCM_LORA,
                                     lora_weight=weight)
        images, run = generate(studio, request)
        assert type(run.pipeline.scheduler).__name__ == f"{sampler}Scheduler"
        return np.asarray(images[0], dtype=np.float32)

    base = image(0.0)
    assert np.abs(image(1.0) - base).mean() > 0.5
    assert np.array_equal(image(0.0), base)


def test_choosing_an_lcm_lora_switches_to_its_settings_and_another_lora_changes_nothing(studio):
    *settings, note = settings_for_lora(studio, TINY_LCM_LORA)
    assert settings == ["LCM", 4, 1.0, 1.0] and "is an LCM-LoRA" in note
    assert settings_for_lora(studio, "")[-1] == ""


def test_fast_picks_the_models_lcm_lora_or_says_there_is_none(studio, models_dir, tmp_path):
    assert fast_preset(studio, TINY_SD_MODEL)[:5] == [TINY_LCM_LORA, "LCM", 4, 1.0, 1.0]
    shutil.copytree(models_dir / TINY_SD_MODEL, tmp_path / "undistilled")
    undistilled = studio.catalog.find_or_add(str(tmp_path / "undistilled"), TEXT_TO_IMAGE).name
    assert "has no LCM-LoRA yet" in fast_preset(studio, undistilled)[5]


def test_the_consistency_parametrisation_is_the_identity_at_time_zero_and_recovers_the_clean_latent():
    c_skip, c_out = boundary_scalings(torch.tensor([0, 999]))
    assert (c_skip[0].item(), c_out[0].item()) == (1.0, 0.0) and c_skip[1].item() < 1e-4
    generator = torch.Generator().manual_seed(0)
    clean, noise = torch.randn(2, 4, 8, 8, generator=generator), torch.randn(2, 4, 8, 8, generator=generator)
    alpha_bar = torch.tensor([0.9, 0.2]).view(-1, 1, 1, 1)
    noisy = alpha_bar.sqrt() * clean + (1 - alpha_bar).sqrt() * noise
    velocity = alpha_bar.sqrt() * noise - (1 - alpha_bar).sqrt() * clean
    for prediction_type, output in (("epsilon", noise), ("v_prediction", velocity)):
        recovered_clean, recovered_noise = clean_and_noise(output, noisy, alpha_bar, prediction_type)
        assert torch.allclose(recovered_clean, clean, atol=1e-5) and torch.allclose(recovered_noise, noise, atol=1e-5)


def test_an_lcm_distillation_job_lists_an_lcm_lora_for_its_base(studio, tmp_path):
    manager = JobManager(studio).start()
    try:
        preset = presets("cpu")["LCM distillation, quick test"]
        assert preset.kind == LCM_LORA
        options = replace(preset, name="my-lcm", steps=2, resolution=64, instance_prompt="a photo",
                          base_model=TINY_SD_MODEL, sample_every=0)
        images = sorted(path for path in squares_folder(tmp_path / "squares", count=4, size=64).iterdir()
                        if path.suffix == ".png")
        upload_id, _ = manager.uploads.inspect(images, [path.name for path in images])
        job = manager.submit(upload_id, options)
        wait_for_status(manager, job.id, FINISHED)
    finally:
        manager.close()
    entry = studio.catalog.get("my-lcm")
    assert entry.few_step == LCM_SAMPLING and entry.base_model == studio.catalog.get(TINY_SD_MODEL).source
    assert fast_preset(studio, TINY_SD_MODEL)[0] in {TINY_LCM_LORA, "my-lcm"}


def test_a_distillation_goes_on_from_a_saved_lcm_lora(models_dir, tmp_path):
    """initial_lora: the adapters start from the saved ones (at a learning rate too small to move them, the LoRA
    saved after a step is the one started from), and a LoRA that does not fit is refused."""
    start = models_dir / TINY_LCM_LORA
    config = TrainingConfig(mode="lcm-lora", train_data_dir=str(squares_folder(tmp_path / "data", count=4, size=64)),
                            pretrained_model=str(models_dir / TINY_SD_MODEL), resolution=64, max_train_steps=1,
                            train_batch_size=4, learning_rate=1e-12, lr_warmup_steps=0, use_ema=False,
                            save_images_steps=0, num_sample_images=1, output_dir=str(tmp_path / "run"),
                            initial_lora=str(start))
    continued = load_file(train(config) / "pytorch_lora_weights.safetensors")
    saved = load_file(start / "pytorch_lora_weights.safetensors")
    assert continued.keys() == saved.keys()
    assert max((continued[key].float() - saved[key].float()).abs().max().item() for key in saved) < 1e-3
    with pytest.raises(ValueError, match="no UNet adapters of this shape"):
        train(replace(config, lora_rank=8, output_dir=str(tmp_path / "other")))
