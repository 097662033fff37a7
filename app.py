"""Diffusion Studio web app: `python app.py` (also what a Hugging Face Space runs)."""

from __future__ import annotations

from diffusion_app.storage import keep_hub_cache_in_storage

keep_hub_cache_in_storage()  # first: huggingface_hub reads HF_HOME when it is imported

import argparse
import logging
import signal

from diffusion_app.service.jobs.manager import open_jobs
from diffusion_app.service.startup import open_studio
from diffusion_app.settings import Settings, add_cli_arguments
from diffusion_app.ui import build_app
from diffusion_app.ui.colour_picker import COLOUR_PICKER_HEAD
from diffusion_app.ui.pixel_zoom import PIXEL_ZOOM_HEAD
from diffusion_app.ui.i18n import PAGE_LANGUAGE_HEAD, TOAST_TITLES_HEAD, page_translations


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Diffusion Studio web app")
    parser.add_argument("--host", help="address to serve on (default: GRADIO_SERVER_NAME or 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port (default: GRADIO_SERVER_PORT or 7860)")
    parser.add_argument("--share", action="store_true", help="also open a public gradio.live link")
    add_cli_arguments(parser)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = Settings.from_env().with_cli_args(parse_args(argv))
    studio = open_studio(settings)
    if settings.zerogpu:
        studio.preload(studio.default_models())  # before any request: a GPU call cannot keep what it loads
    app = build_app(studio, open_jobs(studio))
    app.queue(max_size=settings.queue_size, default_concurrency_limit=settings.concurrency_limit)
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # stop as on Ctrl-C: running jobs checkpoint first
    app.launch(server_name=settings.host, server_port=settings.port, share=settings.share,
               mcp_server=settings.mcp_server, show_error=True, max_file_size=f"{settings.max_upload_mb}mb",
               head=PAGE_LANGUAGE_HEAD + TOAST_TITLES_HEAD + PIXEL_ZOOM_HEAD + COLOUR_PICKER_HEAD,
               i18n=page_translations(app))


if __name__ == "__main__":
    main()
