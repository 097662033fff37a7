import pytest
import torch

from diffusion_app.catalog import UNCONDITIONAL, Catalog, ModelEntry, UnknownModelError, build_catalog
from diffusion_app.demo_model import DEMO_MODEL_NAME, ensure_offline_model
from diffusion_app.settings import Settings, parse_model_spec


def test_local_folders_come_first_and_are_available_offline(models_dir):
    catalog = build_catalog([models_dir])
    names = catalog.names(UNCONDITIONAL)
    assert names[:2] == ["tiny-ddpm", "tiny-gray"]
    assert "google/ddpm-cat-256" in names
    assert catalog.get("tiny-ddpm").available_offline()
    assert not catalog.get("google/ddpm-cat-256").available_offline()
    assert catalog.default(UNCONDITIONAL) == "tiny-ddpm"


def test_user_added_models(models_dir):
    catalog = build_catalog([], (("mine", str(models_dir / "tiny-gray")), ("cats", "google/ddpm-cat-256")))
    assert catalog.get("mine").kind == UNCONDITIONAL and catalog.get("mine").available_offline()
    assert catalog.get("cats").source == "google/ddpm-cat-256"
    with pytest.raises(ValueError, match="not a diffusers pipeline folder"):
        build_catalog([], (("bad", str(models_dir)),))


def test_folders_that_are_not_pipelines_are_ignored(tmp_path):
    (tmp_path / "notes").mkdir()
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "model_index.json").write_text('{"_class_name": "SomethingElse"}')
    assert build_catalog([tmp_path]).names() == build_catalog([]).names()


def test_unknown_model():
    with pytest.raises(UnknownModelError, match="Known models: a"):
        Catalog([ModelEntry("a", "a", UNCONDITIONAL)]).get("b")


def test_demo_model_is_built_only_when_no_local_model_exists(models_dir, tmp_path):
    assert ensure_offline_model([models_dir], tmp_path) is None
    built = ensure_offline_model([tmp_path / "empty"], tmp_path)
    assert built == tmp_path / DEMO_MODEL_NAME
    assert build_catalog([tmp_path]).get(DEMO_MODEL_NAME).available_offline()


def test_settings_from_environment():
    settings = Settings.from_env({
        "DS_DEVICE": "cpu", "DS_DTYPE": "float32", "DS_CACHE_MAX_MODELS": "2", "DS_CACHE_MAX_GB": "1.5", "DS_MAX_BATCH": "4",
        "DS_MODELS": "a=google/ddpm-cat-256; b=/tmp/b", "HF_HUB_OFFLINE": "1",
        "GRADIO_SERVER_NAME": "0.0.0.0", "GRADIO_SERVER_PORT": "7999",
    })
    assert settings.device == "cpu" and settings.dtype == torch.float32
    assert settings.cache_max_models == 2 and settings.cache_max_bytes == int(1.5 * 2**30)
    assert settings.max_batch_size == 4 and settings.offline
    assert settings.extra_models == (("a", "google/ddpm-cat-256"), ("b", "/tmp/b"))
    assert (settings.host, settings.port) == ("0.0.0.0", 7999)


def test_model_spec_parsing():
    assert parse_model_spec("google/ddpm-cat-256") == ("google/ddpm-cat-256", "google/ddpm-cat-256")
    assert parse_model_spec(" cats = google/ddpm-cat-256 ") == ("cats", "google/ddpm-cat-256")
    with pytest.raises(ValueError, match="NAME=SOURCE"):
        parse_model_spec("=nothing")
