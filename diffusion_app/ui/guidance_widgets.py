"""Widgets and helpers shared by the colour and CLIP guidance tabs."""

from __future__ import annotations

from typing import Iterator

import gradio as gr
import pandas as pd

from ..service.generation.guidance import FAST, GUIDANCE_METHODS, Guidance, GuidedRun, GuidedStep
from .common import number, whole_number
from .i18n import tr
from .outputs import ThrottledProgress, is_preview


def guidance_controls(default_scale: float, max_scale: float = 200,
                      info: str = "0 turns guidance off; higher steers harder.") -> tuple[gr.Slider, gr.Radio]:
    scale = gr.Slider(0, max_scale, value=default_scale, step=0.5, label="Guidance scale", info=info)
    method = gr.Radio(list(GUIDANCE_METHODS), value=FAST, label="Method",
                      info="fast: the gradient skips the UNet. exact: through the UNet too, slower and heavier.")
    return scale, method


def schedule_controls() -> tuple[gr.Slider, gr.Slider, gr.Slider]:
    with gr.Accordion("Guidance schedule", open=False):
        every = gr.Slider(1, 50, value=1, step=1, precision=0, label="Guide every k steps")
        with gr.Row():
            start = gr.Slider(0, 1, value=0, step=0.05, label="Start", info="Fraction of the steps.")
            end = gr.Slider(0, 1, value=1, step=0.05, label="End", info="Guidance stops before this fraction.")
    return every, start, end


def loss_plot() -> gr.LinePlot:
    return gr.LinePlot(x="step", y="loss", color="run", label="Guidance loss of the predicted clean image",
                       x_title="step", y_title="loss (mean over images)", elem_classes="loss-plot")


def guidance_from_widgets(scale, method, every, start, end) -> Guidance:
    return Guidance(scale=number(scale, "Guidance scale"), method=method, every=whole_number(every, "Guide every"),
                    start=number(start, "Guidance start"), end=number(end, "Guidance end")).validated()


def loss_frame(runs: dict[str, GuidedRun]) -> pd.DataFrame:
    """The loss per guided step of each run so far, one row per (run, step)."""
    rows = [(step, loss, label) for label, run in runs.items() for step, loss in run.losses]
    return pd.DataFrame(rows, columns=["step", "loss", "run"])


def redrawn_loss_plot(runs: dict[str, GuidedRun]) -> gr.LinePlot:
    """The loss plot, redrawn: the browser fixes a plot's series when it draws it and later only swaps
    the data, so naming the runs again (a legend change) lets a run that started later get its line."""
    return gr.LinePlot(loss_frame(runs), colors_in_legend=list(runs))


def follow(runs: dict[str, GuidedRun], progress: gr.Progress) -> Iterator[tuple[str, GuidedStep]]:
    """Run each in turn with one progress bar over all; yields (run label, step) after every step."""
    progress = ThrottledProgress(progress)
    total = sum(run.request.steps for run in runs.values())
    done = 0
    for label, run in runs.items():
        for step in run:
            done += 1
            progress((done, total), desc=tr(f"Sampling ({label})"), unit="steps")
            yield label, step


def plot_update(step: GuidedStep, runs: dict[str, GuidedRun]):
    """A redrawn loss plot on previews and when a run ends (so the final data finds every line), else no change."""
    return redrawn_loss_plot(runs) if is_preview(step) or step.index + 1 == step.total else gr.skip()


def timing(run: GuidedRun) -> str:
    return tr(f"{run.seconds:.1f} s ({run.seconds / run.request.steps * 1000:.0f} ms/step)")
