"""X/Y/Z sweeps: up to three axes over a generation tab's inputs, every combination a cell, the results laid out
in one grid with the axes' values written on it, as AUTOMATIC1111's X/Y/Z plot does.

Values are typed as lists or ranges: `10, 20, 50`; `1-5` (whole numbers); `0-10 (+2.5)` (a step); `0-1 [5]`
(a count, evenly spaced). For a prompt the values are a search/replace list: `red, blue, green` replaces "red" in
the prompt by each in turn. Cells that differ only in their seed, with seeds one apart (as a range gives them),
run as one batch: image i of a batch uses seed + i, so the batch makes exactly the cells' images.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from itertools import product

from PIL import Image, ImageDraw, ImageFont

RANGE = re.compile(r"^\s*(-?[\d.]+)\s*-\s*(-?[\d.]+)\s*(?:\(\s*\+\s*([\d.]+)\s*\)|\[\s*(\d+)\s*\])?\s*$")
LABEL_HEIGHT = 24
LABEL_PADDING = 6
MIN_CELL = 96  # small samples are enlarged (nearest neighbour) so that the labels fit over them


@dataclass(frozen=True)
class AxisKind:
    """How an axis reads its values: 'int', 'float', 'text' (one of `choices` when given), or 'prompt' (S/R)."""
    type: str
    choices: tuple = ()


@dataclass
class Axis:
    name: str
    values: list
    labels: list[str] = field(default_factory=list)


def parse_values(text: str, kind: AxisKind) -> list:
    """'10, 20, 50' / '1-5' / '0-10 (+2.5)' / '0-1 [5]' -> values of the axis kind, checked."""
    text = str(text or "").strip()
    if not text:
        raise ValueError("An axis needs values: a list (10, 20, 50) or a range (1-5, 0-10 (+2.5), 0-1 [5]).")
    if kind.type in ("int", "float") and (match := RANGE.match(text)):
        start, stop, step, count = match.groups()
        values = number_range(float(start), float(stop), float(step) if step else None, int(count) if count else None,
                              kind.type == "int")
    else:
        values = [part.strip() for part in text.split(",") if part.strip()]
    if kind.type == "int":
        return [whole(value) for value in values]
    if kind.type == "float":
        return [number(value) for value in values]
    if kind.choices:
        for value in values:
            if value not in kind.choices:
                raise ValueError(f"{value!r} is not one of {', '.join(map(str, kind.choices))}.")
    return values


def number_range(start: float, stop: float, step: float | None, count: int | None, whole_numbers: bool) -> list:
    if count is not None:
        if count < 1:
            raise ValueError("A range's count must be at least 1.")
        return [start + (stop - start) * i / max(1, count - 1) for i in range(count)]
    step = step if step is not None else 1.0
    if step <= 0:
        raise ValueError("A range's step must be above 0.")
    direction = 1 if stop >= start else -1
    count = math.floor(abs(stop - start) / step + 1e-9) + 1
    return [start + direction * step * i for i in range(count)]


def whole(value) -> int:
    try:
        number_value = float(value)
    except ValueError:
        raise ValueError(f"{value!r} is not a whole number.") from None
    if number_value != int(number_value):
        raise ValueError(f"{value!r} is not a whole number.")
    return int(number_value)


def number(value) -> float:
    try:
        return float(value)
    except ValueError:
        raise ValueError(f"{value!r} is not a number.") from None


def label(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def plan_cells(axes: list[Axis], max_cells: int) -> list[tuple[int, ...]]:
    """Every combination of the axes' values, as indices (x, y, z), x fastest."""
    sizes = [len(axis.values) for axis in axes]
    cells = math.prod(sizes) if sizes else 0
    if not 0 < cells <= max_cells:
        raise ValueError(f"The sweep has {cells} cells; this server runs at most {max_cells} (DS_MAX_SWEEP_CELLS).")
    return [tuple(reversed(indices)) for indices in product(*[range(size) for size in reversed(sizes)])]


def batches(cells: list[tuple[int, ...]], axes: list[Axis], seed_axis: int | None) -> list[list[tuple[int, ...]]]:
    """Cells grouped into runs: those that differ only in a seed one above the previous one form one batch."""
    if seed_axis is None:
        return [[cell] for cell in cells]
    groups: dict[tuple, list] = {}
    for cell in cells:
        groups.setdefault(tuple(index for axis, index in enumerate(cell) if axis != seed_axis), []).append(cell)
    runs = []
    for group in groups.values():
        group.sort(key=lambda cell: axes[seed_axis].values[cell[seed_axis]])
        run = [group[0]]
        for cell in group[1:]:
            if axes[seed_axis].values[cell[seed_axis]] == axes[seed_axis].values[run[-1][seed_axis]] + 1:
                run.append(cell)
            else:
                runs.append(run)
                run = [cell]
        runs.append(run)
    return runs


def sweep_grid(axes: list[Axis], images: dict[tuple[int, ...], Image.Image]) -> Image.Image:
    """One image: a grid per z value, side by side, x across and y down, each labelled with its values."""
    x, y, z = (axes + [Axis("", [None]), Axis("", [None])])[:3] if len(axes) < 3 else axes
    any_image = next(iter(images.values()))
    zoom = max(1, math.ceil(MIN_CELL / max(any_image.size)))
    images = {cell: image.resize((image.width * zoom, image.height * zoom), Image.Resampling.NEAREST)
              for cell, image in images.items()}
    width, height = any_image.width * zoom, any_image.height * zoom
    font = ImageFont.load_default(size=12)
    left = max(draw_width(font, f"{y.name}: {label(value)}") for value in y.values) + 2 * LABEL_PADDING \
        if y.name else 0
    block_width = left + len(x.values) * width
    top = LABEL_HEIGHT * (1 + bool(z.name))
    canvas = Image.new("RGB", (len(z.values) * block_width, top + len(y.values) * height), "white")
    draw = ImageDraw.Draw(canvas)
    for k, z_value in enumerate(z.values):
        origin = k * block_width
        if z.name:
            draw.text((origin + left + LABEL_PADDING, 4), f"{z.name}: {label(z_value)}", fill="black", font=font)
        for i, x_value in enumerate(x.values):
            draw.text((origin + left + i * width + LABEL_PADDING, top - LABEL_HEIGHT + 4),
                      f"{x.name}: {label(x_value)}" if x.name else "", fill="black", font=font)
            for j, y_value in enumerate(y.values):
                cell = tuple(index for index, axis in zip((i, j, k), (x, y, z)) if axis.name)
                canvas.paste(images[cell].convert("RGB"), (origin + left + i * width, top + j * height))
                if i == 0 and y.name:
                    draw.text((origin + LABEL_PADDING, top + j * height + height // 2 - 6),
                              f"{y.name}: {label(y_value)}", fill="black", font=font)
    return canvas


def draw_width(font, text: str) -> int:
    return int(font.getlength(text))
