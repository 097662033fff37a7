"""CLIP guidance on a tiny random-weight open_clip model, registered from a config file and loaded from a checkpoint."""

import json
from dataclasses import replace

import huggingface_hub
import numpy as np
import pytest
import torch

from diffusion_app.demo_clip import TINY_CLIP_CONFIG, TINY_CLIP_NAME
from diffusion_app.core.cutouts import make_cutouts
from diffusion_app.service.generation.clip_guidance import clip_objective
from diffusion_app.service.models.clip_models import ClipSpec
from diffusion_app.service.generation.guidance import Guidance, GuidedRun
from diffusion_app.service.models.loading import ModelUnavailableError
from diffusion_app.core.metadata import parse_parameters
from diffusion_app.service.generation.sampling import SamplingRequest
from diffusion_app.service.studio import Studio

MODEL = "tiny-ddpm"
PROMPT = "a red apple on a wooden table"


@pytest.fixture
def clip_studio(settings, tiny_clip) -> Studio:
    return Studio(replace(settings, clip_configs=(tiny_clip[0],)))


@pytest.fixture
def spec(tiny_clip) -> ClipSpec:
    return ClipSpec(TINY_CLIP_NAME, str(tiny_clip[1]))


def generators(count, seed=0):
    return [torch.Generator().manual_seed(seed + i) for i in range(count)]


def test_a_local_checkpoint_loads_offline_into_the_shared_cache(clip_studio, spec):
    clip = clip_studio.clip(spec)
    assert clip_studio.clip(spec) is clip
    assert clip.image_size == (24, 24)
    stats = clip_studio.cache.stats()
    assert (stats["hits"], stats["misses"]) == (1, 1)
    assert stats["models"][spec.validated().cache_key]["bytes"] > 0
    assert ClipSpec.from_cache_key(spec.validated().cache_key) == spec.validated()


def test_clip_models_count_against_the_cache_budget(settings, tiny_clip, spec):
    studio = Studio(replace(settings, clip_configs=(tiny_clip[0],), cache_max_models=1))
    studio.pipeline(MODEL, "unconditional")
    studio.clip(spec)
    assert studio.cache.loaded() == [spec.validated().cache_key]


def test_cutouts_have_clip_input_size_and_normalisation(clip_studio, spec):
    objective = clip_objective(clip_studio, spec, PROMPT, 5)
    colour = torch.tensor([0.2, -0.4, 0.9]).view(1, 3, 1, 1)
    inputs = objective.clip_inputs(colour.expand(2, 3, 16, 16), generators(2))
    assert inputs.shape == (10, 3, 24, 24)
    mean, std = torch.tensor(objective.clip.mean), torch.tensor(objective.clip.std)
    expected = ((colour.flatten() + 1) / 2 - mean) / std
    torch.testing.assert_close(inputs, expected.view(1, 3, 1, 1).expand_as(inputs))
    gray = objective.clip_inputs(torch.full((1, 1, 16, 16), 0.2), generators(1))
    torch.testing.assert_close(gray, ((0.6 - mean) / std).view(1, 3, 1, 1).expand(5, 3, 24, 24))


def test_cutouts_are_random_crops_drawn_from_each_images_generator():
    images = torch.rand(2, 3, 16, 16)
    first = make_cutouts(images, 4, (24, 24), generators(2))
    assert first.shape == (8, 3, 24, 24)
    torch.testing.assert_close(first, make_cutouts(images, 4, (24, 24), generators(2)))
    assert not torch.allclose(first[0], first[1])
    alone = make_cutouts(images[1:], 4, (24, 24), generators(1, seed=1))
    torch.testing.assert_close(first[4:], alone)
    assert first.min() >= images.min() - 1e-6 and first.max() <= images.max() + 1e-6  # no padding pixels


def test_loss_gradients_are_finite_for_rgb_and_grayscale(clip_studio, spec):
    objective = clip_objective(clip_studio, spec, PROMPT, 3)
    for channels in (3, 1):
        x0 = torch.randn(2, channels, 16, 16, requires_grad=True)
        losses = objective.loss(x0, generators(2))
        assert losses.shape == (2,) and torch.all((losses >= 0) & (losses <= 2 * (torch.pi / 2) ** 2))
        (gradient,) = torch.autograd.grad(losses.sum(), x0)
        assert torch.isfinite(gradient).all() and gradient.abs().sum() > 0


@pytest.mark.parametrize("method", ["fast", "exact"])
def test_loss_decreases_over_guided_steps(clip_studio, spec, method):
    objective = clip_objective(clip_studio, spec, PROMPT, 8)
    request = SamplingRequest(MODEL, num_images=2, steps=16, seed=2, scheduler="DDIM")
    unguided = GuidedRun(clip_studio, request, Guidance(0.0), objective)
    steered = GuidedRun(clip_studio, request, Guidance(200.0, method), objective)
    list(unguided), list(steered)
    losses = np.array([loss for _, loss in steered.losses])
    baseline = np.array([loss for _, loss in unguided.losses])
    assert losses[-4:].mean() < losses[:4].mean() - 0.05
    assert losses[-4:].mean() < baseline[-4:].mean() - 0.05
    assert all(np.isfinite(losses))


def test_png_parameters_carry_the_prompt_and_clip_settings(clip_studio, spec):
    objective = clip_objective(clip_studio, spec, PROMPT, 2)
    run = GuidedRun(clip_studio, SamplingRequest(MODEL, steps=3, seed=4, scheduler="DDIM"), Guidance(7.5), objective)
    list(run)
    parameters = parse_parameters(run.images()[0].info["parameters"])
    assert parameters["Prompt"] == PROMPT
    assert parameters["Guidance"] == "CLIP" and parameters["Guidance scale"] == "7.5"
    assert parameters["CLIP model"] == f"{TINY_CLIP_NAME}/{spec.weights.rsplit('/', 1)[-1]}"
    assert parameters["Cutouts"] == "2"


def test_a_prompt_longer_than_the_context_is_truncated_and_says_so(clip_studio, spec):
    context = TINY_CLIP_CONFIG["text_cfg"]["context_length"]
    shared = " ".join(["apple"] * context)
    long_a = clip_objective(clip_studio, spec, shared + " on a table", 1)
    long_b = clip_objective(clip_studio, spec, shared + " in the snow", 1)
    short = clip_objective(clip_studio, spec, "an apple", 1)
    assert short.truncation is None
    assert f"tokens long but {TINY_CLIP_NAME}" in long_a.truncation and f"at most {context}" in long_a.truncation
    torch.testing.assert_close(long_a.text_embedding, long_b.text_embedding)  # the differing words were cut
    assert not torch.allclose(short.text_embedding, long_a.text_embedding)


@pytest.mark.parametrize(
    "prompt, cutouts, message",
    [
        ("", 4, "Enter a prompt"),
        ("   ", 4, "Enter a prompt"),
        (PROMPT, 0, "Cutouts must be a whole number from 1 to 64, got 0"),
        (PROMPT, 65, "Cutouts must be a whole number from 1 to 64, got 65"),
        (PROMPT, 2.5, "Cutouts must be a whole number"),
        (PROMPT, True, "Cutouts must be a whole number"),
    ],
)
def test_bad_prompts_and_cutouts_are_refused_before_loading_clip(studio, prompt, cutouts, message):
    with pytest.raises(ValueError, match=message):
        clip_objective(studio, ClipSpec(), prompt, cutouts)  # ViT-B-32/openai is not available here
    assert studio.cache.loaded() == []


def test_missing_clip_weights_offline_name_the_model_and_the_remedy(studio):
    with pytest.raises(ModelUnavailableError) as caught:
        clip_objective(studio, ClipSpec("ViT-B-32", "openai"), PROMPT, 4)
    message = str(caught.value)
    assert "ViT-B-32" in message and "'openai'" in message and "offline" in message
    assert "huggingface.co/timm/vit_base_patch32_clip_224.openai" in message and "path" in message


def test_missing_clip_weights_name_the_mirror_in_use(studio, monkeypatch):
    """HF_ENDPOINT (read by huggingface_hub at import) decides the address a message points to."""
    monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", "http://127.0.0.1:9/mirror")
    with pytest.raises(ModelUnavailableError) as caught:
        clip_objective(studio, ClipSpec("ViT-B-32", "openai"), PROMPT, 4)
    assert "http://127.0.0.1:9/mirror/timm/vit_base_patch32_clip_224.openai" in str(caught.value)
    assert "HF_ENDPOINT" in str(caught.value)


@pytest.mark.parametrize(
    "architecture, weights, message",
    [
        ("ViT-B-32", "no_such_tag", "neither a pretrained tag of ViT-B-32 \\(its tags: openai"),
        ("no-such-model", "openai", "Unknown CLIP architecture 'no-such-model'"),
        ("", "openai", "Choose a CLIP model"),
    ],
)
def test_unknown_clip_models_and_weights_are_refused(studio, architecture, weights, message):
    with pytest.raises((ValueError, ModelUnavailableError), match=message):
        studio.clip(ClipSpec(architecture, weights))


def test_a_checkpoint_of_another_architecture_is_refused(settings, tiny_clip, tmp_path):
    wider = json.loads(json.dumps(TINY_CLIP_CONFIG))
    wider["text_cfg"]["width"] = 64
    config = tmp_path / "tiny-wider-clip.json"
    config.write_text(json.dumps(wider))
    studio = Studio(replace(settings, clip_configs=(config,)))
    with pytest.raises(ModelUnavailableError, match="could not be loaded from .*is it a checkpoint of tiny-wider-clip"):
        studio.clip(ClipSpec("tiny-wider-clip", str(tiny_clip[1])))


def test_guided_clip_run_images_are_reproducible(clip_studio, spec):
    objective = clip_objective(clip_studio, spec, PROMPT, 3)
    request = SamplingRequest(MODEL, num_images=2, steps=4, seed=9, scheduler="DDPM")

    def images():
        run = GuidedRun(clip_studio, request, Guidance(50.0), objective)
        list(run)
        return [np.asarray(image) for image in run.images()]

    assert all(np.array_equal(a, b) for a, b in zip(images(), images()))
