"""Models tab: every catalog model, which are loaded and how much memory they hold, and an unload button.

A public server shows its visitors the models' names, kinds and memory, not where they live on its disk, and
lets only its operators (DS_ADMINS) unload them. A model a visitor trained there is listed to them (and to the
operators) only."""

from __future__ import annotations

import gradio as gr
import pandas as pd

from ..service.models.cache import release_memory
from ..service.studio import Studio
from ..service.visitors import Visitor
from .i18n import error, tr
from .visitor import signed_in_visitor

COLUMNS = ["Model", "Kind", "Source", "Loaded", "Memory (MB)"]


def models_table(studio: Studio, visitor: Visitor | None = None) -> pd.DataFrame:
    """The catalog models the visitor may use; with several generation workers, the memory each holds on all of
    them together. Headers and kinds in the page's language (English for API callers); Loaded is a bool, which
    the page shows as a tick box in every language."""
    loaded = [cache.stats()["models"] for cache in studio.caches]
    visible = set(studio.model_names(visitor=visitor))
    rows = [
        [entry.name, tr(entry.kind), entry.source, any(entry.name in models for models in loaded),
         round(sum(models[entry.name]["bytes"] for models in loaded if entry.name in models) / 2**20, 1)]
        for entry in studio.catalog.entries() if entry.name in visible
    ]
    table = pd.DataFrame(rows, columns=COLUMNS)
    if studio.settings.public:
        table = table.drop(columns="Source")
    return table.rename(columns=tr)


def loaded_models(studio: Studio, visitor: Visitor | None = None) -> list[str]:
    hidden = set(studio.catalog.names()) - set(studio.model_names(visitor=visitor))  # another visitor's models
    return list(dict.fromkeys(name for cache in studio.caches for name in cache.loaded() if name not in hidden))


def cache_summary(studio: Studio) -> str:
    """One line per generation worker (one, except with several GPUs); on Ray, where the models are instead."""
    if studio.ray is not None:
        return tr("Generation runs on Ray Serve replicas, each with its own model cache: the Ray dashboard shows "
                  "them. This page lists the catalog.")
    settings = studio.settings
    budget = f"{settings.cache_max_models} models"
    if settings.cache_max_bytes:
        budget += f" or {settings.cache_max_bytes / 2**30:.1f} GiB"
    lines = []
    for worker in studio.pool.workers:
        stats = worker.cache.stats()
        line = tr(f"{len(stats['models'])} loaded, {stats['total_bytes'] / 2**20:.1f} MB in all (budget: {budget}) · "
                  f"{stats['hits']} hits, {stats['misses']} loads, {stats['evictions']} evictions")
        lines.append(f"{worker.device}: {line}" if len(studio.pool.workers) > 1 else line)
    return "  \n".join(lines)


def build_tab(studio: Studio, tab: gr.Tab, account: gr.State) -> None:
    summary = gr.Markdown(cache_summary(studio))
    table = gr.Dataframe(models_table(studio), interactive=False, label="Catalog", datatype="auto")
    with gr.Row():
        name = gr.Dropdown(choices=loaded_models(studio), label="Loaded model", allow_custom_value=True,
                           info="Unloading frees its memory; the next request that needs it loads it again.")
        unload = gr.Button("Unload")
        refresh = gr.Button("Refresh")

    def list_models(signed_in=None, profile: gr.OAuthProfile | None = None):
        """List the catalog's models, which are loaded and the memory each holds."""
        visitor = signed_in_visitor(studio.settings, signed_in, profile)
        return (models_table(studio, visitor), cache_summary(studio),
                gr.Dropdown(choices=loaded_models(studio, visitor)))

    def unload_model(model_name, signed_in=None, profile: gr.OAuthProfile | None = None):
        """Unload a loaded model to free its memory; the next request that needs it loads it again.

        Args:
            model_name: the name of a loaded model.
        """
        if studio.settings.public:
            visitor = signed_in_visitor(studio.settings, signed_in, profile)
            if visitor is None or not visitor.admin:
                raise error("On this public server only its operators (DS_ADMINS) may unload models.")
        if not model_name:
            raise error("Choose a loaded model to unload.")
        if not any([cache.unload(model_name) for cache in studio.caches]):  # a list: unload it everywhere
            raise error(f"Model {model_name!r} is not loaded.")
        release_memory()
        return list_models(signed_in, profile)

    outputs = [table, summary, name]
    refresh.click(list_models, account, outputs, api_name="list_models", concurrency_limit=None)
    unload.click(unload_model, [name, account], outputs, api_name="unload_model", concurrency_limit=None)
    tab.select(list_models, account, outputs, api_visibility="private", concurrency_limit=None)
