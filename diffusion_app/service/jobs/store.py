"""Training jobs in SQLite (WAL mode, a connection per call): one row per job, in submission order."""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass, fields
from pathlib import Path

from ..sqlite_db import sqlite_transaction

QUEUED, RUNNING, FINISHED, FAILED, CANCELLED, INTERRUPTED = (
    "queued", "running", "finished", "failed", "cancelled", "interrupted")
RESUMABLE = (INTERRUPTED, CANCELLED, FAILED)

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    status TEXT NOT NULL,
    config TEXT NOT NULL,             -- the TrainingConfig as JSON (paths relative to the job's folder)
    dataset TEXT NOT NULL,            -- what the job trains on, as JSON (images, classes, source)
    created REAL NOT NULL,
    queued_at REAL,                   -- place in the queue: resuming queues a job again at the end
    launched_at REAL,                 -- the trainer's last start; progress written since belongs to it
    ended_at REAL,
    pid INTEGER,                      -- the trainer's process group (its launcher's pid) while it runs
    pid_created REAL,                 -- the launcher's start time, so a reused pid is never mistaken for it
    cancel_requested REAL,
    message TEXT,                     -- why it ended as it did
    owner TEXT,                       -- on a public server, the visitor who started it
    ray_job_id TEXT                   -- on a Ray cluster, the submission id of the job that runs the trainer
)
"""
ADDED_COLUMNS = {"owner": "TEXT", "ray_job_id": "TEXT"}  # columns later versions added: databases made before get them on opening


@dataclass(frozen=True)
class Job:
    id: int
    name: str
    status: str
    config: dict
    dataset: dict
    created: float
    queued_at: float | None = None
    launched_at: float | None = None
    ended_at: float | None = None
    pid: int | None = None
    pid_created: float | None = None
    cancel_requested: float | None = None
    message: str | None = None
    owner: str | None = None
    ray_job_id: str | None = None


JSON_COLUMNS = ("config", "dataset")
COLUMNS = tuple(f.name for f in fields(Job))


class UnknownJobError(ValueError):
    pass


class JobStore:
    def __init__(self, path: Path):
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        with sqlite_transaction(self.path) as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(SCHEMA)
            present = {row["name"] for row in db.execute("PRAGMA table_info(jobs)")}
            for column, sql_type in ADDED_COLUMNS.items():
                if column not in present:
                    db.execute(f"ALTER TABLE jobs ADD COLUMN {column} {sql_type}")

    def add(self, name: str, status: str, config: dict, dataset: dict, owner: str | None = None) -> Job:
        now = time.time()
        try:
            with sqlite_transaction(self.path) as db:
                cursor = db.execute(
                    "INSERT INTO jobs (name, status, config, dataset, created, queued_at, owner) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (name, status, json.dumps(config), json.dumps(dataset), now, now, owner))
        except sqlite3.IntegrityError:
            raise ValueError(f"A job named {name!r} exists already; choose another name.") from None
        return self.get(cursor.lastrowid)

    def get(self, job_id: int) -> Job:
        with sqlite_transaction(self.path) as db:
            row = db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        if row is None:
            raise UnknownJobError(f"There is no job #{job_id}.")
        return job_from_row(row)

    def all(self) -> list[Job]:
        with sqlite_transaction(self.path) as db:
            return [job_from_row(row) for row in db.execute("SELECT * FROM jobs ORDER BY id")]

    def with_status(self, status: str) -> list[Job]:
        """Jobs in this status, in queue order."""
        with sqlite_transaction(self.path) as db:
            rows = db.execute("SELECT * FROM jobs WHERE status = ? ORDER BY queued_at, id", (status,))
            return [job_from_row(row) for row in rows]

    def update(self, job_id: int, **values) -> Job:
        unknown = set(values) - set(COLUMNS[1:])
        if unknown:
            raise ValueError(f"Unknown job field(s): {', '.join(sorted(unknown))}.")
        values = {key: json.dumps(value) if key in JSON_COLUMNS else value for key, value in values.items()}
        assignments = ", ".join(f"{key} = ?" for key in values)
        try:
            with sqlite_transaction(self.path) as db:
                db.execute(f"UPDATE jobs SET {assignments} WHERE id = ?", (*values.values(), job_id))
        except sqlite3.IntegrityError:
            raise ValueError(f"A job named {values.get('name')!r} exists already; choose another name.") from None
        return self.get(job_id)

    def delete(self, job_id: int) -> None:
        with sqlite_transaction(self.path) as db:
            db.execute("DELETE FROM jobs WHERE id = ?", (job_id,))


def job_from_row(row: sqlite3.Row) -> Job:
    return Job(**{key: json.loads(row[key]) if key in JSON_COLUMNS else row[key] for key in COLUMNS})
