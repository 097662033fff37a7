"""Model lists that follow the catalog: models added while the app runs (finished training jobs) appear
in every tab's dropdown when the page loads or the user switches tabs, without a restart.

Gradio checks a dropdown's value against the choices its session was last sent, so an API client
calls /refresh_models once (in the same session) before using a model added after it connected. On a public
server that check also keeps a visitor's trained models theirs: another visitor's session is never sent them.
"""

from __future__ import annotations

import gradio as gr

from ..service.studio import Studio
from .common import model_choices
from .visitor import signed_in_visitor


def refresh_model_choices(app: gr.Blocks, studio: Studio, triggers: list, account: gr.State) -> None:
    """Send every model dropdown (made by common.model_dropdown) the names the visitor may use on each trigger."""
    dropdowns = [block for block in app.blocks.values() if getattr(block, "model_kind", None)]

    def refresh(signed_in=None, profile: gr.OAuthProfile | None = None):
        visitor = signed_in_visitor(studio.settings, signed_in, profile)
        return [gr.Dropdown(choices=model_choices(studio, dropdown.model_kind, dropdown.none_choice, visitor))
                for dropdown in dropdowns]

    gr.on(triggers, refresh, inputs=[account], outputs=dropdowns, api_name="refresh_models", show_progress="hidden",
          concurrency_limit=None)
