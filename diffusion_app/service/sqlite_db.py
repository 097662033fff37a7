"""One SQLite transaction per call, shared by the job queue and the history index.

A fresh connection each time keeps the stores safe to use from Gradio's worker threads and from
several processes on one data directory; WAL mode (set by each store) lets readers run beside a writer.
"""

from __future__ import annotations

import sqlite3
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Iterator


@contextmanager
def sqlite_transaction(path: Path) -> Iterator[sqlite3.Connection]:
    """Commit on success, roll back on an exception; rows come back as sqlite3.Row."""
    with closing(sqlite3.connect(path, timeout=30)) as db:
        db.row_factory = sqlite3.Row
        with db:
            yield db
