"""The defaults that follow from the hardware: bfloat16 where the CPU computes it natively, threads, presets."""

from __future__ import annotations

import argparse

import pytest
import torch

from diffusion_app import hardware
from diffusion_app.service.jobs.options import presets
from diffusion_app.settings import Settings, add_cli_arguments

WITH_BF16 = {"avx512_bf16": True, "amx_bf16": False, "avx512_f": True}
WITH_AMX = {"avx512_bf16": False, "amx_bf16": True}
WITHOUT_BF16 = {"avx512_bf16": False, "amx_bf16": False, "avx2": True}


@pytest.fixture
def cpu_features(monkeypatch):
    """Pretend the CPU has the given features, as torch.cpu.get_capabilities reports them."""
    def pretend(features: dict):
        monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: dict(features))
    return pretend


@pytest.mark.parametrize("features, native", [(WITH_BF16, True), (WITH_AMX, True), (WITHOUT_BF16, False), ({}, False)])
def test_native_bfloat16_is_read_from_the_cpu_features(cpu_features, features, native):
    cpu_features(features)
    assert hardware.cpu_has_native_bf16() is native
    assert hardware.default_dtype("cpu") == (torch.bfloat16 if native else torch.float32)
    assert hardware.default_mixed_precision("cpu") == ("bf16" if native else "no")
    assert hardware.default_dtype("cuda") == torch.float16


@pytest.mark.parametrize("features", [WITH_BF16, WITHOUT_BF16])
def test_the_dtype_setting_overrides_the_detected_default(cpu_features, features):
    cpu_features(features)
    detected = Settings.from_env({"DS_DEVICE": "cpu"}).dtype
    assert detected == (torch.bfloat16 if features is WITH_BF16 else torch.float32)
    for name, dtype in (("float32", torch.float32), ("bfloat16", torch.bfloat16)):
        assert Settings.from_env({"DS_DEVICE": "cpu", "DS_DTYPE": name}).dtype == dtype
    parser = argparse.ArgumentParser()
    add_cli_arguments(parser)
    from_flag = Settings.from_env({"DS_DEVICE": "cpu"}).with_cli_args(parser.parse_args(["--dtype", "float32"]))
    assert from_flag.dtype == torch.float32


def test_presets_and_help_follow_the_machine(cpu_features):
    cpu_features(WITHOUT_BF16)
    assert {options.mixed_precision for options in presets("cpu").values()} == {"no"}
    assert "keep no" in hardware.mixed_precision_help("cpu")
    cpu_features(WITH_BF16)
    assert {options.mixed_precision for options in presets("cpu").values()} == {"bf16"}
    assert "bf16 trains faster" in hardware.mixed_precision_help("cpu")


def test_compile_and_threads_settings():
    settings = Settings.from_env({"DS_DEVICE": "cpu", "DS_COMPILE": "1", "DS_THREADS": "1"})
    assert settings.compile and settings.threads == 1
    assert not Settings.from_env({"DS_DEVICE": "cpu"}).compile
    with pytest.raises(ValueError, match="DS_THREADS"):
        Settings.from_env({"DS_THREADS": "0"})


def test_threads_are_set_and_reported():
    before = torch.get_num_threads()
    try:
        message = hardware.configure_threads(1)
        assert torch.get_num_threads() == 1
        assert "1 intra-op" in message and f"{hardware.physical_cores()} physical cores" in message
    finally:
        torch.set_num_threads(before)
