"""HF_ENDPOINT (a Hub mirror such as hf-mirror.com) is where a model download goes.

huggingface_hub reads HF_ENDPOINT when it is imported, so the app runs in a subprocess with it set to
a stub server on this machine, which records what it is asked and answers 404 for everything.
"""

import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from diffusion_app.settings import REPO_ROOT

REPO_ID = "google/ddpm-cifar10-32"  # listed in the catalog by default
SAMPLE = f"""
from pathlib import Path

from diffusion_app.service.models.loading import ModelUnavailableError
from diffusion_app.service.generation.sampling import SamplingRequest, SamplingRun
from diffusion_app.service.studio import Studio
from diffusion_app.settings import Settings

studio = Studio(Settings(models_dir=Path({{models!r}}), data_dir=Path({{data!r}}), offline=False))
try:
    SamplingRun(studio, SamplingRequest({REPO_ID!r}, steps=1, seed=0))
except ModelUnavailableError as err:
    print(err)
"""


class RecordingHandler(BaseHTTPRequestHandler):
    requested: list[str] = []

    def answer(self):
        self.requested.append(self.path)
        self.send_response(404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_HEAD = answer

    def log_message(self, *args):
        pass


def test_a_model_download_asks_the_endpoint_in_hf_endpoint(tmp_path):
    server = ThreadingHTTPServer(("127.0.0.1", 0), RecordingHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    endpoint = f"http://127.0.0.1:{server.server_address[1]}"
    env = {key: value for key, value in os.environ.items() if key not in ("HF_HUB_OFFLINE", "DS_OFFLINE")}
    env.update(HF_ENDPOINT=endpoint, HF_HOME=str(tmp_path / "hf"), HF_HUB_ETAG_TIMEOUT="5",
               HF_HUB_DOWNLOAD_TIMEOUT="5")
    script = SAMPLE.format(models=str(tmp_path / "models"), data=str(tmp_path / "data"))
    try:
        result = subprocess.run([sys.executable, "-c", script], cwd=REPO_ROOT, env=env, capture_output=True,
                                text=True, timeout=120)
    finally:
        server.shutdown()
    assert result.returncode == 0, result.stderr
    assert any(REPO_ID in path for path in RecordingHandler.requested), RecordingHandler.requested
    assert f"Model '{REPO_ID}' is not available" in result.stdout and "HF_ENDPOINT" in result.stdout
