"""Where training data waits for its job: each upload (a folder's files, a .zip, or a `datasets` dataset) is
checked into a folder of its own under <data dir>/uploads/<id>, with its report. Submitting a job copies what
it needs; uploads that never became a job are removed after a day."""

from __future__ import annotations

import re
import shutil
import time
import uuid
from pathlib import Path
from typing import Callable, Sequence

from ..training.dataset_report import REPORT_FILE, DatasetReport
from ..training.uploads import UploadLimits, ingest_upload

UPLOAD_MAX_AGE_SECONDS = 24 * 3600
UPLOAD_ID = re.compile(r"[0-9a-f]{32}")


class UploadArea:
    def __init__(self, folder: Path, limits: UploadLimits, offline: bool):
        self.folder = folder
        self.limits = limits
        self.offline = offline

    def inspect(self, files: Sequence[str | Path], names: Sequence[str] | None = None) -> tuple[str, DatasetReport]:
        """Check an upload into a folder of its own; returns its id (for submitting a job) and its report."""
        return self._store(lambda folder: ingest_upload(files, folder, self.limits, names))

    def inspect_dataset(self, name: str, split: str = "train", image_column: str = "image",
                        caption_column: str | None = None, label_column: str | None = None
                        ) -> tuple[str, DatasetReport]:
        """The same for a `datasets` dataset: a hub id (downloaded when the server is online) or a local folder."""
        from ..training.hub_datasets import ingest_dataset

        name = (name or "").strip()
        if not name:
            raise ValueError("Type a dataset id, such as huggan/smithsonian_butterflies_subset.")
        if self.offline and not Path(name).expanduser().is_dir():
            raise ValueError(f"This server runs offline (DS_OFFLINE), so the hub dataset {name!r} cannot be "
                             "downloaded: upload the images instead, or run the server with network access once.")
        return self._store(lambda folder: ingest_dataset(name, split or "train", image_column or "image",
                                                         caption_column or None, label_column or None, folder,
                                                         self.limits))

    def _store(self, ingest: Callable[[Path], DatasetReport]) -> tuple[str, DatasetReport]:
        self.remove_stale()
        upload_id = uuid.uuid4().hex
        folder = self.folder / upload_id
        try:
            return upload_id, ingest(folder)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise

    def get(self, upload_id: str | None) -> tuple[Path, DatasetReport]:
        folder = self.folder / (upload_id or "")
        if not UPLOAD_ID.fullmatch(upload_id or "") or not (folder / REPORT_FILE).is_file():
            raise ValueError("Upload a folder of images or a .zip first (uploads are kept for a day).")
        return folder, DatasetReport.load(folder)

    def remove_stale(self) -> None:
        if not self.folder.is_dir():
            return
        for folder in self.folder.iterdir():
            if time.time() - folder.stat().st_mtime > UPLOAD_MAX_AGE_SECONDS:
                shutil.rmtree(folder, ignore_errors=True)
