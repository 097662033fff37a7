"""Tab: the forward process. An image noised to a row of timesteps with a model's (or a named) noise schedule,
and the schedule's curves: how much image and how much noise are left at each t."""

from __future__ import annotations

import gradio as gr
import numpy as np
import pandas as pd

from ..catalog import CLASS_CONDITIONAL, TEXT_TO_IMAGE, UNCONDITIONAL
from ..service.generation.forward_process import MAX_TIMESTEPS, SCHEDULES, ForwardRequest, forward_process
from ..service.studio import Studio
from .common import EXAMPLE_PICTURE, EXAMPLES, how_it_works, reports_errors, whole_number
from .outputs import output_gallery

HOW_IT_WORKS = r"""
The forward process adds Gaussian noise in $T$ small steps with variances $\beta_t$. Its closed form jumps to
any $t$ at once, with $\alpha_t = 1 - \beta_t$ and $\bar\alpha_t = \prod_{s \le t} \alpha_s$:

$$x_t = \sqrt{\bar\alpha_t}\,x_0 + \sqrt{1 - \bar\alpha_t}\,\epsilon, \qquad \epsilon \sim \mathcal{N}(0, I)$$

$\sqrt{\bar\alpha_t}$ is how much of the image is left, $\sqrt{1-\bar\alpha_t}$ how much noise; the signal-to-noise
ratio is $\mathrm{SNR}(t) = \bar\alpha_t / (1 - \bar\alpha_t)$. The linear schedule (DDPM) destroys the image early;
the cosine schedule (`squaredcos_cap_v2`, Nichol & Dhariwal 2021) keeps it longer; `scaled_linear` is Stable
Diffusion's, for latents. A model's own schedule also sets the image's size and channels. The row uses one noise
$\epsilon$ for every $t$, as the scheduler's `add_noise` does.
"""
EXAMPLE_IMAGE = EXAMPLES / "grinning_face.png"


def parse_timesteps(text: str) -> tuple[int, ...]:
    """'0, 250, 999' -> (0, 250, 999)."""
    try:
        return tuple(int(part) for part in str(text or "").replace(";", ",").split(",") if part.strip())
    except ValueError:
        raise ValueError(f"Timesteps must be whole numbers separated by commas, got {text!r}.") from None


def build_tab(studio: Studio) -> None:
    models = [name for kind in (UNCONDITIONAL, CLASS_CONDITIONAL, TEXT_TO_IMAGE) for name in studio.model_names(kind)]
    with gr.Row():
        with gr.Column(scale=1):
            image = gr.Image(value=str(EXAMPLE_PICTURE), label="Image", type="pil", sources=["upload", "clipboard"],
                             image_mode="RGB", height=240)
            schedule = gr.Dropdown(list(SCHEDULES) + models, value="linear", label="Noise schedule",
                                   info="A named schedule, or a model's own (which also sets the size and channels).")
            timesteps = gr.Textbox(value="0, 50, 100, 250, 500, 750, 999", label="Timesteps t",
                                   info=f"Up to {MAX_TIMESTEPS}, from 0 to T-1, separated by commas.")
            seed = gr.Number(value=0, precision=0, minimum=0, label="Noise seed")
            noise = gr.Button("Noise it", variant="primary")
        with gr.Column(scale=2):
            gallery = output_gallery("x_t", type="filepath", columns=MAX_TIMESTEPS // 2)
            with gr.Row():
                signal = gr.LinePlot(x="t", y="value", color="curve", label="How much image and noise is left",
                                     height=260)
                snr = gr.LinePlot(x="t", y="log10 SNR", label="Signal-to-noise ratio (log10)", height=260)
    how_it_works(HOW_IT_WORKS)

    @reports_errors
    def run_forward_process(picture, schedule_name, timestep_text, seed_value):
        """Noise an image to a row of timesteps of a noise schedule, and plot the schedule.

        Args:
            picture: the image to noise.
            schedule_name: linear, scaled_linear, squaredcos_cap_v2, or a catalog model (its own schedule).
            timestep_text: timesteps separated by commas, e.g. "0, 250, 999".
            seed_value: seed of the noise.
        """
        request = ForwardRequest(schedule_name, parse_timesteps(timestep_text), whole_number(seed_value, "Seed"))
        images, curves = forward_process(studio, picture, request)
        labelled = [(image, f"t={t}") for image, t in zip(images, request.timesteps)]
        long = pd.DataFrame({"t": np.tile(curves["t"], 3), "value": np.concatenate(
            [curves[name] for name in ("alpha_bar", "sqrt(alpha_bar)", "sqrt(1 - alpha_bar)")]),
            "curve": np.repeat(["alpha_bar", "sqrt(alpha_bar)", "sqrt(1 - alpha_bar)"], len(curves["t"]))})
        yield labelled, long, pd.DataFrame({"t": curves["t"], "log10 SNR": np.log10(curves["SNR"])})

    inputs = [image, schedule, timesteps, seed]
    noise.click(run_forward_process, inputs, [gallery, signal, snr], api_name="forward_process", concurrency_limit=None)
    gr.Examples([[str(EXAMPLE_IMAGE), "linear", "0, 50, 100, 250, 500, 750, 999", 0],
                 [str(EXAMPLE_IMAGE), "squaredcos_cap_v2", "0, 50, 100, 250, 500, 750, 999", 0]],
                inputs, label="Examples: the same image under the linear and the cosine schedule")
