"""Where training data waits for its job: each upload (a folder's files, a .zip, or a `datasets` dataset) is
checked into a folder of its own under <data dir>/uploads/<id>, with its report. Submitting a job copies what
it needs; uploads that never became a job are removed after a day."""

from __future__ import annotations

import math
import re
import shutil
import time
import uuid
from collections import defaultdict, deque
from pathlib import Path
from typing import Callable, Sequence

from ...training.dataset_report import REPORT_FILE, DatasetReport
from ...training.uploads import UploadLimits, ingest_upload
from ..visitors import Visitor

UPLOAD_MAX_AGE_SECONDS = 24 * 3600
UPLOAD_ID = re.compile(r"[0-9a-f]{32}")
HUB_DATASET_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")
HOUR = 3600.0


class UploadArea:
    def __init__(self, folder: Path, limits: UploadLimits, settings):
        self.folder = folder
        self.limits = limits
        self.settings = settings
        self._recent: dict[str, deque] = defaultdict(deque)  # a public server's visitors: their uploads' times

    def inspect(self, files: Sequence[str | Path], names: Sequence[str] | None = None,
                visitor: Visitor | None = None) -> tuple[str, DatasetReport]:
        """Check an upload into a folder of its own; returns its id (for submitting a job) and its report."""
        return self._store(lambda folder: ingest_upload(files, folder, self.limits, names), visitor)

    def inspect_dataset(self, name: str, split: str = "train", image_column: str = "image",
                        caption_column: str | None = None, label_column: str | None = None,
                        visitor: Visitor | None = None) -> tuple[str, DatasetReport]:
        """The same for a `datasets` dataset: a hub id (downloaded when the server is online) or, on a private
        server, a local folder."""
        from ...training.hub_datasets import ingest_dataset

        name = (name or "").strip()
        if not name:
            raise ValueError("Type a dataset id, such as huggan/smithsonian_butterflies_subset.")
        local = Path(name).expanduser().is_dir()
        if self.settings.public and not (self.settings.allow_hub_datasets and HUB_DATASET_ID.fullmatch(name)
                                         and not local):
            raise ValueError("This public server does not load datasets by name (its operator can allow hub "
                             "datasets with DS_ALLOW_HUB_DATASETS=1): upload the images instead.")
        if self.settings.offline and not local:
            raise ValueError(f"This server runs offline (DS_OFFLINE), so the hub dataset {name!r} cannot be "
                             "downloaded: upload the images instead, or run the server with network access once.")
        return self._store(lambda folder: ingest_dataset(name, split or "train", image_column or "image",
                                                         caption_column or None, label_column or None, folder,
                                                         self.limits), visitor)

    def _count(self, visitor: Visitor | None) -> None:
        """One more upload for a visitor of a public server, who may check DS_MAX_UPLOADS_PER_HOUR an hour."""
        if visitor is None or visitor.admin:
            return
        times, now = self._recent[visitor.name], time.monotonic()
        while times and now - times[0] > HOUR:
            times.popleft()
        if len(times) >= self.settings.max_uploads_per_hour:
            wait = math.ceil((HOUR - (now - times[0])) / 60)
            raise ValueError(f"You have checked {len(times)} uploads in the last hour, the most this server allows "
                             f"one visitor; try again in {wait} minute(s).")
        times.append(now)

    def _store(self, ingest: Callable[[Path], DatasetReport], visitor: Visitor | None) -> tuple[str, DatasetReport]:
        self._count(visitor)
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
