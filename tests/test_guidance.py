import math
import threading

import numpy as np
import pytest
import torch
from diffusers import DDIMScheduler, DDPMScheduler
from PIL import Image

from diffusion_app.demo_model import random_unet
from diffusion_app.service.generation.guidance import ColourObjective, Guidance, GuidedRun, Objective, guide, guided_denoise
from diffusion_app.core.metadata import parse_parameters
from diffusion_app.service.generation.sampling import SamplingRequest, sample

MODEL = "tiny-ddpm"
ORANGE = "#e8702a"


def pixels(images):
    return [np.asarray(image) for image in images]


def guided(studio, request, guidance, objective=None):
    run = GuidedRun(studio, request, guidance, objective or ColourObjective(ORANGE))
    list(run)
    return run.images(), run


@pytest.mark.parametrize("scheduler, eta", [("DDPM", 0.0), ("DDIM", 0.0), ("DDIM", 0.7)])
def test_scale_zero_gives_the_unguided_images_and_still_records_the_loss(studio, scheduler, eta):
    request = SamplingRequest(MODEL, num_images=2, steps=8, seed=5, scheduler=scheduler, eta=eta)
    plain, _ = sample(studio, request)
    images, run = guided(studio, request, Guidance(0.0))
    assert all(np.array_equal(a, b) for a, b in zip(pixels(plain), pixels(images)))
    assert [step for step, _ in run.losses] == list(range(1, 9))
    assert all(math.isfinite(loss) and loss > 0 for _, loss in run.losses)


@pytest.mark.parametrize("method, colour", [("fast", "#e03c31"), ("exact", "#1f5fd1")])
def test_colour_guidance_pulls_the_images_toward_the_colour(studio, method, colour):
    request = SamplingRequest(MODEL, num_images=2, steps=12, seed=1, scheduler="DDIM")
    objective = ColourObjective(colour)
    unguided, _ = guided(studio, request, Guidance(0.0), objective)
    images, run = guided(studio, request, Guidance(20.0, method), objective)
    assert objective.distance(images) < 0.5 * objective.distance(unguided)
    losses = [loss for _, loss in run.losses]
    assert losses[-1] < 0.5 * losses[0]


def test_grayscale_models_are_guided_toward_the_colours_luminance(studio):
    objective = ColourObjective(ORANGE)
    expected = np.asarray(Image.new("RGB", (1, 1), objective.rgb).convert("L"))[0, 0] / 255
    assert objective.target(1) == pytest.approx((expected,))
    request = SamplingRequest("tiny-gray", num_images=2, steps=10, seed=0, scheduler="DDIM")
    unguided, _ = guided(studio, request, Guidance(0.0), objective)
    images, _ = guided(studio, request, Guidance(20.0), objective)
    assert images[0].mode == "L"
    assert objective.distance(images) < 0.5 * objective.distance(unguided)


def test_colour_distance_of_images_made_of_the_colour_is_zero():
    objective = ColourObjective("rgb(255, 128, 0)")
    assert objective.hex == "#ff8000"
    assert objective.distance([Image.new("RGB", (4, 4), (255, 128, 0))]) == 0
    assert objective.distance([Image.new("RGB", (4, 4), (0, 128, 255))]) == pytest.approx(2 * 255 / 255 / 3)


class SquaredDistance(Objective):
    """A smooth loss, so finite differences can check gradients."""

    def loss(self, x0, generators):
        return (x0 - 0.3).pow(2).mean(dim=(1, 2, 3))

    def parameters(self):
        return {}


@pytest.fixture
def step_setup():
    torch.manual_seed(0)
    unet = random_unet(sample_size=8, block_out_channels=(8, 16)).double()
    scheduler = DDIMScheduler.from_config(DDPMScheduler().config, clip_sample=False)
    scheduler.set_timesteps(10)
    t = scheduler.timesteps[3]
    x = torch.randn(2, 3, 8, 8, dtype=torch.float64)
    return unet, scheduler, t, x


def gradient_of(method, unet, scheduler, t, x, objective):
    """The gradient `guide` follows, recovered from how far it moves x at scale 1 and weight 1."""
    guidance = Guidance(1.0, method)
    _, moved, _ = guide(unet, scheduler, x, t, objective, guidance, [None] * len(x), torch.Generator(), {})
    return x - moved


def true_loss(unet, scheduler, t, x, objective):
    """The loss as a function of x alone, the UNet included."""
    with torch.no_grad():
        noise = unet(x, t).sample
        return objective.loss(scheduler.step(noise, t, x).pred_original_sample, []).sum()


def test_fast_gradient_flows_through_the_x0_formula_only(step_setup):
    unet, scheduler, t, x = step_setup
    objective = ColourObjective(ORANGE)
    with torch.no_grad():
        noise = unet(x, t).sample
    alpha_bar = scheduler.alphas_cumprod[int(t)].double()
    x0 = (x - (1 - alpha_bar).sqrt() * noise) / alpha_bar.sqrt()
    target = torch.tensor(objective.target(3), dtype=torch.float64).view(1, 3, 1, 1) * 2 - 1
    expected = torch.sign(x0 - target) / (3 * 8 * 8) / alpha_bar.sqrt()
    torch.testing.assert_close(gradient_of("fast", unet, scheduler, t, x, objective), expected)


def test_fast_gradient_is_the_same_for_a_v_prediction_model(step_setup):
    """The fast step reads dL/dx0 back to x_t as for a noise-predicting model, so a scale steers v-prediction
    models (the bundled ones) as strongly: through their own x0 formula it would be 1/alpha_bar times weaker."""
    unet, scheduler, t, x = step_setup
    v_scheduler = DDIMScheduler.from_config(scheduler.config, prediction_type="v_prediction")
    v_scheduler.set_timesteps(10)
    objective = ColourObjective(ORANGE)
    with torch.no_grad():
        v = unet(x, t).sample
    alpha_bar = scheduler.alphas_cumprod[int(t)].double()
    x0 = alpha_bar.sqrt() * x - (1 - alpha_bar).sqrt() * v
    target = torch.tensor(objective.target(3), dtype=torch.float64).view(1, 3, 1, 1) * 2 - 1
    expected = torch.sign(x0 - target) / (3 * 8 * 8) / alpha_bar.sqrt()
    torch.testing.assert_close(gradient_of("fast", unet, v_scheduler, t, x, objective), expected)


def test_exact_gradient_matches_finite_differences_and_fast_does_not(step_setup):
    unet, scheduler, t, x = step_setup
    objective = SquaredDistance()
    direction = torch.randn_like(x)
    epsilon = 1e-5
    numeric = (true_loss(unet, scheduler, t, x + epsilon * direction, objective)
               - true_loss(unet, scheduler, t, x - epsilon * direction, objective)) / (2 * epsilon)
    exact = (gradient_of("exact", unet, scheduler, t, x, objective) * direction).sum()
    fast = (gradient_of("fast", unet, scheduler, t, x, objective) * direction).sum()
    assert exact.item() == pytest.approx(numeric.item(), rel=1e-5)
    assert fast.item() != pytest.approx(numeric.item(), rel=1e-2)


class RecordingObjective(ColourObjective):
    def __init__(self):
        super().__init__(ORANGE)
        self.weights_asked = []

    def gradient_weight(self, alpha_bar):
        self.weights_asked.append(alpha_bar)
        return 1.0


def test_gradient_weight_gets_alpha_bar_of_the_timestep_not_of_the_loop_index(studio):
    objective = RecordingObjective()
    run = GuidedRun(studio, SamplingRequest(MODEL, steps=10, seed=0, scheduler="DDIM"), Guidance(5.0), objective)
    steps = list(run)
    alphas_cumprod = run.scheduler.alphas_cumprod
    assert [step.timestep for step in steps][:2] == [900, 800]
    assert objective.weights_asked == pytest.approx([float(alphas_cumprod[step.timestep]) for step in steps])


def test_every_k_steps_within_a_range_and_the_png_parameters(studio):
    request = SamplingRequest(MODEL, steps=20, seed=3, scheduler="DDIM")
    images, run = guided(studio, request, Guidance(10.0, "exact", every=3, start=0.2, end=0.8))
    assert [step for step, _ in run.losses] == [index + 1 for index in (6, 9, 12, 15)]
    parameters = parse_parameters(images[0].info["parameters"])
    assert parameters == {"Steps": "20", "Sampler": "DDIM", "Eta": "0.0", "Seed": "3", "Size": "16x16",
                          "Model": MODEL, "Guidance scale": "10", "Guidance method": "exact", "Guidance every": "3",
                          "Guidance range": "0.2-0.8", "Guidance": "colour", "Colour": ORANGE}


def test_concurrent_fast_and_exact_runs_match_their_solo_runs(studio):
    requests = [(SamplingRequest(MODEL, steps=4 + i, seed=i, scheduler="DDPM"), Guidance(15.0, method))
                for i, method in enumerate(["fast", "exact", "fast", "exact"])]
    solo = [pixels(guided(studio, request, guidance)[0])[0] for request, guidance in requests]
    together = [None] * len(requests)
    barrier = threading.Barrier(len(requests))

    def worker(index):
        barrier.wait()
        together[index] = pixels(guided(studio, *requests[index])[0])[0]

    threads = [threading.Thread(target=worker, args=(index,)) for index in range(len(requests))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(np.array_equal(a, b) for a, b in zip(solo, together))


@pytest.mark.parametrize(
    "guidance, message",
    [
        (Guidance(math.nan), "Guidance scale must be a number from 0 \\(off\\) to 1000, got nan"),
        (Guidance(-1.0), "Guidance scale must be a number from 0 \\(off\\) to 1000, got -1.0"),
        (Guidance(1e9), "Guidance scale must be a number from 0"),
        (Guidance(math.inf), "Guidance scale must be a number from 0"),
        (Guidance(5.0, "slow"), "Unknown guidance method 'slow'; choose fast or exact"),
        (Guidance(5.0, every=0), "Guide every k steps must be a whole number from 1"),
        (Guidance(5.0, start=-0.1), "Guidance start must be a fraction of the steps from 0 to 1"),
        (Guidance(5.0, start=0.6, end=0.5), "Guidance start \\(0.6\\) must come before its end \\(0.5\\)"),
        (Guidance(5.0, start=0.5, end=0.55, every=4), "guides none of them"),
    ],
)
def test_invalid_guidance_is_refused_clearly(studio, guidance, message):
    with pytest.raises(ValueError, match=message):
        GuidedRun(studio, SamplingRequest(MODEL, steps=10, seed=0), guidance, ColourObjective(ORANGE))


def test_bad_colours_and_class_conditional_requests_are_refused(studio):
    with pytest.raises(ValueError, match="Colour must be like #ff8000"):
        ColourObjective("not a colour")
    with pytest.raises(ValueError, match="Guidance steers unconditional models"):
        GuidedRun(studio, SamplingRequest("tiny-digits", steps=2, classes=(1,)), Guidance(1.0), ColourObjective(ORANGE))
    with pytest.raises(ValueError, match="kind 'class-conditional'; this needs kind 'unconditional'"):
        GuidedRun(studio, SamplingRequest("tiny-digits", steps=2), Guidance(1.0), ColourObjective(ORANGE))


def test_guided_denoise_yields_every_step_with_shapes():
    torch.manual_seed(0)
    unet = random_unet(sample_size=8, block_out_channels=(8, 16))
    generators = [torch.Generator().manual_seed(0)]
    steps = list(guided_denoise(unet, DDPMScheduler(), torch.randn(1, 3, 8, 8), 5, generators,
                                ColourObjective(ORANGE), Guidance(3.0, every=2), generators))
    assert [s.index for s in steps] == list(range(5))
    assert [s.loss is not None for s in steps] == [True, False, True, False, True]
    assert all(s.sample.shape == s.pred_original.shape == (1, 3, 8, 8) for s in steps)
