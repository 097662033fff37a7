"""The X/Y/Z sweep under each generation tab: pick up to three of the tab's inputs and their values; every
combination runs through the tab's own handler (so its checks, its history and, on ZeroGPU, its GPU calls stay
as they are) and the cells come back as one labelled grid and as separate images, each with its own
parameters. A cell is one image; the tab's other inputs are taken as they stand."""

from __future__ import annotations

import functools
import inspect
from dataclasses import dataclass

import gradio as gr

from ..core.metadata import format_parameters, with_parameters
from ..service.studio import Studio
from ..service.generation.sweep import Axis, AxisKind, batches, label, parse_values, plan_cells, sweep_grid
from .common import generation_queue
from .i18n import error, tr
from .outputs import output_gallery

NONE = "—"


@dataclass(frozen=True)
class SweepInput:
    """A tab input a sweep may vary: where it sits among the handler's arguments and how its values read."""
    index: int
    kind: AxisKind
    search_replace: bool = False  # a prompt: the first value is the text to replace, each value its replacement


@dataclass(frozen=True)
class SweepTab:
    """What the sweep needs to know of a tab's handler arguments."""
    inputs: dict[str, SweepInput]  # axis name -> input
    count: int  # the number-of-images argument (1 per cell; a seed batch's size)
    seed: int
    random_seed: int
    images_at: int  # where the handler's last output holds its images


def sweep_panel(studio: Studio, tab_id: str, handler, inputs: list, spec: SweepTab,
                visitor_id: gr.BrowserState) -> None:
    names = [NONE, *spec.inputs]
    with gr.Accordion("X/Y/Z sweep", open=False):
        gr.Markdown("Vary up to three inputs; the others stay as set above, except the image count: each cell draws "
                    "one image (vary Seed for more). Values: `10, 20, 50`, `1-5`, `0-10 (+2.5)`, `0-1 [5]`; for a "
                    "prompt, `red, blue, green` replaces \"red\" by each in turn.")
        axes = []
        for axis_name in ("X", "Y", "Z"):
            with gr.Row():
                axes += [gr.Dropdown(names, value=NONE, label=f"{axis_name} axis", scale=1),
                         gr.Textbox(label=f"{axis_name} values", scale=3)]
        with gr.Row():
            run = gr.Button("Run sweep", variant="primary")
            stop = gr.Button("Stop sweep", variant="stop")
        grid = gr.Image(label="Sweep", type="pil", format="png", interactive=False, elem_classes="pixelated")
        cells = output_gallery("Cells", type="filepath", columns=8)
        report = gr.Markdown()

    def run_sweep(*values):
        axis_values, tab_values, visitor = values[:6], list(values[6:-1]), values[-1]
        try:
            chosen = [Axis(name, parse_values(text, spec.inputs[name].kind))
                      for name, text in zip(axis_values[::2], axis_values[1::2]) if name and name != NONE]
            if not chosen:
                raise ValueError("Choose at least one axis.")
            if len({axis.name for axis in chosen}) < len(chosen):
                raise ValueError("Each axis must vary a different input.")
            plan = plan_cells(chosen, studio.settings.max_sweep_cells)
        except ValueError as err:
            raise error(str(err)) from err
        names_ = [axis.name for axis in chosen]
        seed_axis = names_.index("Seed") if "Seed" in names_ else None
        images, done = {}, 0
        for group in batches(plan, chosen, seed_axis):
            arguments = cell_arguments(spec, chosen, group[0], tab_values)
            arguments[spec.count] = len(group)
            outputs = None
            for outputs in handler(*arguments, visitor):
                yield gr.skip(), gr.skip(), tr(f"Cell {done + 1}/{len(plan)}")
            for cell, image in zip(group, outputs[spec.images_at]):
                images[cell] = image
            done += len(group)
            yield gr.skip(), [images[cell] for cell in plan if cell in images], tr(f"{done}/{len(plan)} cells")
        picture = sweep_grid(chosen, images)
        description = "; ".join(f"{axis.name}: {', '.join(map(label, axis.values))}" for axis in chosen)
        with_parameters(picture, format_parameters({"X/Y/Z sweep": description, "Cells": len(plan)}))
        yield picture, [images[cell] for cell in plan], tr(f"{len(plan)} cells · {description}")

    run_sweep.__signature__ = sweep_signature(handler, len(inputs))
    event = run.click(run_sweep, [*axes, *inputs, visitor_id], [grid, cells, report],
                      api_name=f"sweep_{tab_id.replace('-', '_')}", **generation_queue(studio))
    stop.click(None, cancels=[event])


def sweep_signature(handler, tab_inputs: int) -> inspect.Signature:
    """The sweep handler's parameters as the API shows them: the axes, then the tab's own inputs by their names,
    then the optional browser id."""
    parameter = functools.partial(inspect.Parameter, kind=inspect.Parameter.POSITIONAL_OR_KEYWORD)
    axes = [parameter(f"{axis}_{part}") for axis in ("x", "y", "z") for part in ("axis", "values")]
    tab = [parameter(name) for name in list(inspect.signature(handler).parameters)[:tab_inputs]]
    return inspect.Signature([*axes, *tab, parameter("visitor_id", default=None)])


def cell_arguments(spec: SweepTab, axes: list[Axis], cell: tuple[int, ...], values: list) -> list:
    """The handler's arguments for a cell: the tab's values with the cell's axis values put in, one image, and
    the cell's seed (or the tab's seed, never a random one)."""
    arguments = list(values)
    for axis, index in zip(axes, cell):
        target = spec.inputs[axis.name]
        value = axis.values[index]
        if target.search_replace:
            arguments[target.index] = str(arguments[target.index]).replace(axis.values[0], value)
        elif target.kind.type == "list":
            arguments[target.index] = [value]
        else:
            arguments[target.index] = value
    arguments[spec.random_seed] = False
    return arguments
