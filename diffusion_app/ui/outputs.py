"""How a tab shows what it makes: read-only galleries, progress on the status line, and what Stop leaves.

Outputs are not upload targets, so galleries are built with `interactive=False`. While a run streams, Gradio's
progress overlay would cover every output it updates, the x_t and x0 previews a learner is there to watch
among them: progress shows on the status line only (`show_progress_on`). Stop cancels the run and rewrites the
status line to say at which step it stopped; the galleries keep the last preview the run sent.
"""

from __future__ import annotations

import re
import time

import gradio as gr

from ..service.studio import Studio
from .common import generation_queue
from .i18n import tr

PROGRESS = re.compile(r"(\d+)\s*/\s*(\d+)")  # "Step 50/1000 · 3.1 s", "guided: step 3/20", in any language
PREVIEWS_PER_RUN = 10  # predicted clean images a streaming tab shows during one run


def is_preview(step) -> bool:
    """Whether this step (a DenoiseStep or GuidedStep: `index` of `total`) is one of the run's previews; the
    last step is not, since the run's result follows it."""
    every = max(1, step.total // PREVIEWS_PER_RUN)
    return (step.index + 1) % every == 0 and step.index + 1 < step.total


class ThrottledProgress:
    """A tab's gr.Progress that passes a step count on at most four times a second (and always the last step).

    Gradio sends the latest progress every 10 ms; each message re-renders part of a page as large as this one,
    and at a tiny model's 100 steps a second that kept the browser's main thread so busy a 1000-step run froze
    the page until it ended (tests/test_browser_outputs.py clicks Stop during such a run).
    """

    interval = 0.25

    def __init__(self, progress: gr.Progress):
        self.progress = progress
        self.last_sent = float("-inf")

    def __call__(self, value, desc: str | None = None, unit: str = "steps"):
        now = time.monotonic()
        last_step = isinstance(value, tuple) and value[0] == value[1]
        if isinstance(value, tuple) and not last_step and now - self.last_sent < self.interval:
            return
        self.last_sent = now
        self.progress(value, desc=desc, unit=unit)


def output_gallery(label: str, **options) -> gr.Gallery:
    """A gallery of generated PNGs (parameters included) that nobody uploads into.

    Its cells keep the size `columns` gives them however few images there are (`fit_columns=False`), so one
    64 px image is not stretched over the whole row and cropped; small images in them are shown whole at a
    whole-number zoom (`pixel_zoom`).
    """
    return gr.Gallery(**{"label": label, "format": "png", "interactive": False, "elem_classes": "pixelated",
                         "object_fit": "contain", "fit_columns": False, **options})


def stopped_report(report: str | None, running: bool):
    """The status line once Stop has ended a run: where it stopped, or nothing when no run was going.

    A run clears the status line as it starts and ends on a summary without "N/M" in it, so an empty line
    means it stopped before its first step and a summary means it had already finished.
    """
    if not running:
        return gr.skip(), False
    found = PROGRESS.search(report or "")
    if found is not None:
        return tr(f"Stopped at step {found.group(1)}/{found.group(2)}; the images shown are its last preview."), False
    if not (report or "").strip():
        return tr("Stopped before the first step."), False
    return gr.skip(), False


def run_and_stop(studio: Studio, generate: gr.Button, stop: gr.Button, handler, inputs: list, outputs: list,
                 report: gr.Markdown, api_name: str):
    """Wire a tab's Generate to its handler (progress on the report only) and Stop to end it; returns the event.

    Stop rewrites the status line only after the cancel has gone through (`.then`), so no preview still on
    its way overwrites it; `running` ends with a finished run (`.success`), not with a cancelled one.
    """
    running = gr.State(False)
    generate.click(lambda: (True, ""), None, [running, report], queue=False, api_visibility="private",
                   show_progress="hidden")
    event = generate.click(handler, inputs, outputs, api_name=api_name, show_progress_on=[report],
                           **generation_queue(studio))
    event.success(lambda: False, None, running, api_visibility="private", show_progress="hidden")
    stop.click(None, None, None, cancels=[event], queue=False, api_visibility="private").then(
        stopped_report, [report, running], [report, running], queue=False, api_visibility="private",
        show_progress="hidden")
    return event
