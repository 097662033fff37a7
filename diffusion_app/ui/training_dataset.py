"""The Training tab's first section: a folder, a .zip or a hub dataset, checked and reported with a preview
before any job starts. The report suggests the job's name and whether it is class-conditional or grayscale."""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from ..service.jobs.manager import JobManager
from ..settings import Settings
from ..training.dataset_report import preview_grid
from .common import reports_errors, whole_number
from .i18n import tr
from .training_jobs import shows_errors
from .training_report import escape, report_markdown
from .visitor import current_visitor


@dataclass
class DatasetInputs:
    upload_id: gr.State
    folder: gr.File
    archive: gr.File
    dataset_id: gr.Textbox
    split: gr.Textbox
    image_column: gr.Textbox
    caption_column: gr.Textbox
    label_column: gr.Textbox
    load_dataset: gr.Button
    report: gr.Markdown
    preview: gr.Image


def dataset_inputs() -> DatasetInputs:
    """The section's components, laid out where this is called."""
    upload_id = gr.State(None)
    gr.Markdown("### 1. Dataset")
    with gr.Row():
        with gr.Column(scale=1):
            folder = gr.File(label="Image folder", file_count="directory")
            archive = gr.File(label="…or a .zip", file_types=[".zip"])
            gr.Markdown("Images directly in the folder train an unconditional model; one subfolder per class "
                        "(`cat/*.png`, `dog/*.png`) a class-conditional one. Captions, for text to image and "
                        "LoRA: a `metadata.jsonl` (`file_name`, `text`) or a `.txt` named like each image. "
                        "Browsers send a folder's files without their subfolders, so upload classes as a .zip.")
            with gr.Accordion("…or a dataset from the Hugging Face Hub", open=False):
                dataset_id = gr.Textbox(label="Dataset", placeholder="huggan/smithsonian_butterflies_subset",
                                        info="A hub dataset id (downloads once) or a local dataset folder.")
                with gr.Row():
                    split = gr.Textbox(value="train", label="Split")
                    image_column = gr.Textbox(value="image", label="Image column")
                    caption_column = gr.Textbox(label="Caption column", placeholder="text")
                    label_column = gr.Textbox(label="Label column", placeholder="label")
                load_dataset = gr.Button("Load the dataset")
        with gr.Column(scale=2):
            report = gr.Markdown("No dataset yet.")
            preview = gr.Image(label="Preview", type="pil", format="png", interactive=False,
                               elem_classes="pixelated")
    return DatasetInputs(upload_id, folder, archive, dataset_id, split, image_column, caption_column, label_column,
                         load_dataset, report, preview)


def wire_dataset(jobs: JobManager, settings: Settings, account: gr.State, section: DatasetInputs, resolution,
                 suggestions: list) -> None:
    """Inspect an upload or a hub dataset; the outputs after the report and preview are `suggestions`: the job
    name, class-conditional and grayscale components of the options section."""

    def show_report(new_id, dataset, size):
        """The inspect handlers' outputs for a stored upload: its report, preview and the choices it suggests."""
        return (new_id, report_markdown(dataset, size), preview_grid(jobs.uploads.folder / new_id, dataset, size),
                free_job_name(jobs, dataset.source), gr.Checkbox(value=bool(dataset.class_names)),
                gr.Checkbox(value=dataset.grayscale))

    @reports_errors
    def inspect(signed_in, files, size, profile: gr.OAuthProfile | None = None):
        yield None, tr("Checking the upload…"), None, gr.skip(), gr.skip(), gr.skip()  # forget the previous upload
        visitor = current_visitor(settings, signed_in, profile)
        size = whole_number(size, "Resolution")
        try:
            new_id, dataset = jobs.uploads.inspect(files if isinstance(files, list) else [files] if files else [],
                                                   visitor=visitor)
        except ValueError as err:
            yield None, f"**{tr('Upload refused.')}** {escape(tr(str(err)))}", None, gr.skip(), gr.skip(), gr.skip()
            raise
        yield show_report(new_id, dataset, size)

    @reports_errors
    def inspect_hub(signed_in, dataset_name, split_name, images_from, captions_from, labels_from, size,
                    profile: gr.OAuthProfile | None = None):
        yield None, tr("Loading the dataset…"), None, gr.skip(), gr.skip(), gr.skip()
        visitor = current_visitor(settings, signed_in, profile)
        size = whole_number(size, "Resolution")
        try:
            new_id, dataset = jobs.uploads.inspect_dataset(dataset_name, split_name, images_from, captions_from,
                                                           labels_from, visitor=visitor)
        except ValueError as err:
            yield None, f"**{tr('Dataset refused.')}** {escape(tr(str(err)))}", None, gr.skip(), gr.skip(), gr.skip()
            raise
        yield show_report(new_id, dataset, size)

    @shows_errors
    def rereport(signed_in, current_upload, size):
        if signed_in is None or not current_upload:
            return gr.skip(), gr.skip()
        folder_path, dataset = jobs.uploads.get(current_upload)
        size = whole_number(size, "Resolution")
        return report_markdown(dataset, size), preview_grid(folder_path, dataset, size)

    inspect_outputs = [section.upload_id, section.report, section.preview, *suggestions]
    section.folder.upload(inspect, [account, section.folder, resolution], inspect_outputs, api_name="inspect_dataset")
    section.archive.upload(inspect, [account, section.archive, resolution], inspect_outputs, api_visibility="private")
    section.load_dataset.click(inspect_hub, [account, section.dataset_id, section.split, section.image_column,
                                             section.caption_column, section.label_column, resolution],
                               inspect_outputs, api_name="inspect_hub_dataset")
    resolution.change(rereport, [account, section.upload_id, resolution], [section.report, section.preview],
                      api_visibility="private")


def free_job_name(jobs: JobManager, source: str) -> str:
    taken = {job.name for job in jobs.jobs()} | set(jobs.studio.catalog.names())
    name, suffix = source, 2
    while name in taken:
        name, suffix = f"{source}-{suffix}", suffix + 1
    return name
