"""`python app.py` in a subprocess, as a user starts it: shared by the test fixtures and docs/take_screenshots.py;
and a Blocks app served in the test's own process, for tests about what the app does rather than how it starts
(seconds instead of a new Python's imports)."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import httpx

REPO_ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def running_app(env: dict[str, str], log_path: Path, start_timeout: float = 120) -> Iterator[str]:
    """Start app.py with this environment, logging to log_path; yields its URL once it serves the page."""
    port = free_port()
    with open(log_path, "w") as log:
        process = subprocess.Popen([sys.executable, "app.py", "--port", str(port)], cwd=REPO_ROOT, env=env,
                                   stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + start_timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"app.py exited early:\n{log_path.read_text()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"app.py did not start in time:\n{log_path.read_text()}")
            try:
                if httpx.get(url, timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.5)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


@contextlib.contextmanager
def serving(app) -> Iterator[str]:
    """Serve this Blocks app from this process on a free port; yields its URL, closes it on exit."""
    port = free_port()
    app.queue().launch(server_port=port, prevent_thread_lock=True, quiet=True)
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        app.close()
