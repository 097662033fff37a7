"""The history: every image a tab generates, kept with its parameters and the tab's inputs, so that it can be
found again, shown, downloaded, deleted, and sent back to its tab to make it again.

Images are PNG files (their `parameters` chunk included) under <data dir>/history/images; an index in SQLite
(WAL mode, a connection per call, as the job store) records for each the tab, model, text (prompt or colour),
parameters, the tab's inputs of the run that made it and the image's place in that run, and its owner: on a
public server the visitor (their login, or an anonymous id their browser keeps), so that each sees only their
own. Past DS_HISTORY_MAX_MB the oldest images are removed.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from ..core.metadata import PARAMETERS_KEY, save_png
from .sqlite_db import sqlite_transaction

SCHEMA = """
CREATE TABLE IF NOT EXISTS images (
    id TEXT PRIMARY KEY,
    created REAL NOT NULL,
    tab TEXT NOT NULL,               -- the tab's id: unconditional, text2img, ...
    model TEXT NOT NULL,
    text TEXT NOT NULL,              -- the prompt, colour or classes: what the search box finds
    parameters TEXT NOT NULL,        -- the image's PNG parameters
    inputs TEXT NOT NULL,            -- the tab's inputs of the run that made it, as JSON
    position INTEGER NOT NULL,       -- its place among that run's images
    owner TEXT,                      -- a public server's visitor; NULL elsewhere
    bytes INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS images_by_owner_and_time ON images (owner, created);
"""


@dataclass(frozen=True)
class HistoryImage:
    id: str
    created: float
    tab: str
    model: str
    text: str
    parameters: str
    inputs: list
    position: int
    owner: str | None
    bytes: int


class History:
    def __init__(self, folder: Path, max_bytes: int):
        self.folder = folder
        self.images_folder = folder / "images"
        self.images_folder.mkdir(parents=True, exist_ok=True)
        self.max_bytes = max_bytes
        self.path = folder / "history.db"
        self._prune_lock = threading.Lock()
        with sqlite_transaction(self.path) as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(SCHEMA)

    def add(self, tab: str, model: str, text: str, inputs: list, images: list[Image.Image],
            owner: str | None = None) -> list[str]:
        """Keep a run's images (each with its PNG parameters); returns their ids."""
        ids, now = [], time.time()
        rows = []
        for position, image in enumerate(images):
            image_id = uuid.uuid4().hex
            path = save_png(image, self.file(image_id))
            rows.append((image_id, now, tab, str(model), str(text or ""), image.info.get(PARAMETERS_KEY, ""),
                         json.dumps(inputs), position, owner, path.stat().st_size))
            ids.append(image_id)
        with sqlite_transaction(self.path) as db:
            db.executemany("INSERT INTO images VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
        self.prune()
        return ids

    def file(self, image_id: str) -> Path:
        return self.images_folder / f"{image_id}.png"

    def search(self, owner: str | None = None, tab: str | None = None, model: str | None = None,
               text: str | None = None, limit: int = 100) -> list[HistoryImage]:
        """Newest first; on a public server (owner given) only that owner's images."""
        clauses, values = [], []
        for column, value in (("owner", owner), ("tab", tab), ("model", model)):
            if value:
                clauses.append(f"{column} = ?")
                values.append(value)
        if text:
            clauses.append("(text LIKE ? OR parameters LIKE ?)")
            values += [f"%{text}%"] * 2
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        with sqlite_transaction(self.path) as db:
            rows = db.execute(f"SELECT * FROM images {where} ORDER BY created DESC, position LIMIT ?",
                              (*values, limit)).fetchall()
        return [image_from_row(row) for row in rows]

    def get(self, image_id: str, owner: str | None = None) -> HistoryImage:
        """One image; another owner's image is, to this owner, no image at all."""
        with sqlite_transaction(self.path) as db:
            row = db.execute("SELECT * FROM images WHERE id = ?", (image_id,)).fetchone()
        if row is None or (owner is not None and row["owner"] != owner):
            raise ValueError("That image is not in your history (it was deleted, or pruned as the oldest).")
        return image_from_row(row)

    def delete(self, image_id: str, owner: str | None = None) -> None:
        self.get(image_id, owner)
        with sqlite_transaction(self.path) as db:
            db.execute("DELETE FROM images WHERE id = ?", (image_id,))
        self.file(image_id).unlink(missing_ok=True)

    def total_bytes(self) -> int:
        with sqlite_transaction(self.path) as db:
            return db.execute("SELECT COALESCE(SUM(bytes), 0) FROM images").fetchone()[0]

    def prune(self) -> int:
        """Remove the oldest images until the history fits in max_bytes; returns how many went."""
        removed = 0
        with self._prune_lock:
            while self.total_bytes() > self.max_bytes:
                with sqlite_transaction(self.path) as db:
                    oldest = db.execute("SELECT id FROM images ORDER BY created, position LIMIT 50").fetchall()
                    db.executemany("DELETE FROM images WHERE id = ?", [(row["id"],) for row in oldest])
                for row in oldest:
                    self.file(row["id"]).unlink(missing_ok=True)
                removed += len(oldest)
        return removed


def image_from_row(row: sqlite3.Row) -> HistoryImage:
    return HistoryImage(**{**dict(row), "inputs": json.loads(row["inputs"])})
