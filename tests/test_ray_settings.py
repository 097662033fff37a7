"""The Ray backend's settings: read from DS_RAY_* and --ray, checked, and off unless asked for."""

from __future__ import annotations

import argparse

import pytest

from diffusion_app.ray_settings import RaySettings
from diffusion_app.settings import Settings, add_cli_arguments


def test_no_ray_unless_an_address_is_given():
    assert Settings.from_env({}).ray is None


def test_ray_settings_from_the_environment():
    ray = Settings.from_env({"DS_RAY_ADDRESS": "auto", "DS_RAY_MIN_REPLICAS": "2", "DS_RAY_MAX_REPLICAS": "4",
                             "DS_RAY_GPUS_PER_REPLICA": "0.5", "DS_RAY_JOB_GPUS": "2"}).ray
    assert ray == RaySettings("auto", min_replicas=2, max_replicas=4, gpus_per_replica=0.5, job_gpus=2)
    defaults = Settings.from_env({"DS_RAY_ADDRESS": "10.0.0.5:6379", "DS_RAY_MIN_REPLICAS": "3"}).ray
    assert (defaults.max_replicas, defaults.gpus_per_replica, defaults.job_gpus) == (3, None, None)


def test_the_ray_flag_names_the_cluster():
    parser = argparse.ArgumentParser()
    add_cli_arguments(parser)
    settings = Settings.from_env({}).with_cli_args(parser.parse_args(["--ray", "local"]))
    assert settings.ray.address == "local" and settings.ray.min_replicas == 1


@pytest.mark.parametrize("env, message", [
    ({"DS_RAY_MIN_REPLICAS": "3", "DS_RAY_MAX_REPLICAS": "2"}, "DS_RAY_MIN_REPLICAS <= DS_RAY_MAX_REPLICAS"),
    ({"DS_RAY_MIN_REPLICAS": "0"}, "DS_RAY_MIN_REPLICAS <= DS_RAY_MAX_REPLICAS"),
    ({"DS_RAY_GPUS_PER_REPLICA": "-1"}, "DS_RAY_GPUS_PER_REPLICA must be 0 or more"),
    ({"DS_ZEROGPU": "1"}, "leave DS_RAY_ADDRESS unset there"),
])
def test_impossible_ray_settings_are_refused_with_the_setting_named(env, message):
    with pytest.raises(ValueError, match=message):
        Settings.from_env({"DS_RAY_ADDRESS": "auto", **env})
