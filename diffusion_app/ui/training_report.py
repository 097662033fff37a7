"""What the Training tab shows: the dataset report, the jobs table and the selected job's status."""

from __future__ import annotations

import html
import statistics
import time

from ..catalog import CLASS_CONDITIONAL, LORA, TEXT_TO_IMAGE, UNCONDITIONAL
from ..service.jobs.manager import FINISHED, QUEUED, RUNNING, JobManager
from ..service.jobs.options import LORA_KINDS
from ..training.captions import CLIP_CONTEXT
from ..training.dataset_report import DatasetReport
from .i18n import tr

SKIPPED_LISTED = 20
CAPTION_EXAMPLES = 3
SIDE_BUCKETS = (16, 32, 64, 128, 256, 512, 1024)
TABLE_HEADERS = ["Job", "Name", "Status", "Step", "Progress", "ETA", "Images/s", "Created"]
KIND_TABS = {UNCONDITIONAL: "Unconditional and DDIM step control", CLASS_CONDITIONAL: "Digits",
             TEXT_TO_IMAGE: "Text to image", LORA: "Text to image"}


def report_markdown(dataset: DatasetReport, resolution: int) -> str:
    usable = dataset.usable(resolution)
    lines = [f"**{len(dataset.accepted)} image(s) accepted**, {len(dataset.skipped)} file(s) skipped."]
    if dataset.class_names:
        counts = dataset.class_counts(resolution)
        classes = [f"{escape(name)} ({count})" for name, count in counts.items()]
        lines.append(f"{len(counts)} classes: {', '.join(classes)}")
    else:
        lines.append("No class subfolders: an unconditional dataset.")
    too_small = len(dataset.accepted) - len(usable)
    lines.append(f"At {resolution}x{resolution}: **{len(usable)} usable**"
                 + (f"; {too_small} smaller than {resolution} px on their shorter side are left out "
                    "(lower the resolution to keep them)." if too_small else "."))
    sizes = [tr(f"{axis} {low}–{high} (median {median})")
             for axis, (low, median, high) in dataset.size_summary().items()]
    lines.append(f"Sizes: {', '.join(sizes)}")
    sides = [f"{label}: {count}" for label, count in side_histogram(dataset)]
    lines.append(f"Shorter side: {' · '.join(sides)}")
    for note, count in dataset.notes().items():
        lines.append(f"Converted: {count} × {escape(note)}")
    if dataset.repeated_names:
        lines.append(f"{dataset.repeated_names} files share their name with another; each is kept.")
    lines += caption_lines(dataset)
    text = "  \n".join(map(tr, lines))
    if dataset.caption_problems:
        text += "\n\n" + problem_table(tr("Caption not used"), dataset.caption_problems)
    if dataset.skipped:
        text += "\n\n" + problem_table(tr("Skipped"), dataset.skipped)
    return text


def problem_table(heading: str, problems: list) -> str:
    """A Markdown table of the first files with a problem and why, and how many more there are."""
    rows = "\n".join(f"| {escape(problem.name)} | {escape(tr(problem.reason))} |"
                     for problem in problems[:SKIPPED_LISTED])
    more = len(problems) - SKIPPED_LISTED
    return f"| {heading} | {tr('Why')} |\n|---|---|\n{rows}" + (f"\n\n{tr(f'…and {more} more.')}" if more > 0 else "")


def caption_lines(dataset: DatasetReport) -> list[str]:
    """How many images have a caption, how long the captions are, which get truncated, and a few examples."""
    captioned = dataset.captioned
    if not captioned:
        return ["No captions: text to image and LoRA need them, or an instance prompt for every image."]
    lengths = dataset.caption_lengths()
    missing = len(dataset.accepted) - len(captioned)
    lines = [f"**Captions: {len(captioned)} of {len(dataset.accepted)} images**"
             + (f"; {missing} without one take the instance prompt if you type one, else the empty caption "
                "(they then teach the unconditional prediction)." if missing else ".")]
    lines.append(f"Caption length: {min(lengths)}–{max(lengths)} tokens (median {statistics.median(lengths):g}).")
    truncated = dataset.truncated_captions()
    if truncated:
        lines.append(f"{truncated} caption(s) are longer than the {CLIP_CONTEXT} tokens Stable Diffusion's text "
                     "encoder reads: their end is cut off.")
    examples = "; ".join(f"{escape(image.name)}: “{escape(image.caption)}”" for image in captioned[:CAPTION_EXAMPLES])
    lines.append(f"Examples: {examples}")
    return lines


def side_histogram(dataset: DatasetReport) -> list[tuple[str, int]]:
    sides = [image.shorter_side for image in dataset.accepted]
    edges = (0, *SIDE_BUCKETS, float("inf"))
    labels = [f"<{SIDE_BUCKETS[0]}"] + [f"{a}–{b - 1}" for a, b in zip(SIDE_BUCKETS, SIDE_BUCKETS[1:])] \
        + [f"≥{SIDE_BUCKETS[-1]}"]
    return [(label, sum(low <= side < high for side in sides)) for label, low, high in zip(labels, edges, edges[1:])]


def table_row(jobs: JobManager, job) -> list:
    progress = jobs.progress(job)
    state = job.status
    if state == RUNNING and job.cancel_requested:
        state = "cancelling"
    elif state == QUEUED:
        state = f"queued (number {jobs.queue_position(job)} in line)"
    total = progress.total_steps
    return [f"#{job.id}", job.name, tr(state), f"{progress.step}/{total}" if total else "–",
            f"{progress.fraction:.0%}" if total else "–",
            duration(progress.eta_seconds) if job.status == RUNNING and progress.eta_seconds is not None else "–",
            f"{progress.images_per_s:.1f}" if progress.images_per_s else "–",
            time.strftime("%Y-%m-%d %H:%M", time.localtime(job.created))]


def status_html(jobs: JobManager, job) -> str:
    progress = jobs.progress(job)
    total = progress.total_steps
    parts = [f"<b>#{job.id} {html.escape(job.name)}</b>: {html.escape(tr(job.status))}"]
    if total:
        parts.append(tr(f"step {progress.step}/{total} ({progress.fraction:.0%})"))
    if job.status == RUNNING and progress.eta_seconds is not None:
        parts.append(tr(f"ETA {duration(progress.eta_seconds)}"))
    if progress.images_per_s:
        parts.append(tr(f"{progress.images_per_s:.1f} images/s"))
    lines = [" · ".join(parts)]
    if total:
        lines.append(f'<progress value="{progress.step}" max="{total}" style="width:100%"></progress>')
    dataset = job.dataset
    classes = f", classes {html.escape(', '.join(dataset['classes']))}" if dataset.get("classes") else ""
    size = f"{job.config['resolution']}x{job.config['resolution']}"
    if job.config["pretrained_model"]:
        base = html.escape(job.config["pretrained_model"])
        size += tr(f", LoRA on {base}" if job.config.get("mode") in LORA_KINDS else f", from {base}")
    lines.append(tr(f"{dataset['images']} images from {html.escape(dataset['source'])}{classes}; {size}"))
    if job.message:
        lines.append(html.escape(tr(job.message)))
    if job.status == FINISHED:
        kind = LORA if job.config.get("mode") in LORA_KINDS else {"text-to-image": TEXT_TO_IMAGE}.get(
            job.config.get("mode"), UNCONDITIONAL)
        kind = CLASS_CONDITIONAL if dataset.get("classes") else kind
        name, tabs = html.escape(job.name), KIND_TABS[kind]
        lines.append(tr(f"The model <b>{name}</b> is in the {tabs} tabs' LoRA list." if kind == LORA else
                        f"The model <b>{name}</b> is in the {tabs} tabs' model lists."))
    return "<br>".join(lines)


def duration(seconds: float) -> str:
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    minutes = seconds // 60
    return f"{minutes} min" if minutes < 60 else f"{minutes // 60} h {minutes % 60:02d} min"


def escape(text: str) -> str:
    """Markdown-safe text: user-given names may hold |, *, _, [ or backticks."""
    return "".join(f"\\{c}" if c in "\\`*_{}[]()#+-.!|<>" else c for c in text)
