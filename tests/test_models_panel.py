"""The Models tab through the API: what is loaded, its memory, and unloading it."""

import pytest
from gradio_client import Client
from gradio_client.exceptions import AppError

from conftest import TINY_MODEL


@pytest.fixture(scope="module")
def client(server_url):
    return Client(server_url, verbose=False)


def loaded_row(table, name):
    rows = {row[0]: dict(zip(table["headers"], row)) for row in table["data"]}
    return rows[name]


def test_generating_loads_a_model_and_unloading_frees_it(client):
    client.predict(TINY_MODEL, 1, 2, 0, False, api_name="/generate_unconditional")
    table, summary, _ = client.predict(api_name="/list_models")
    row = loaded_row(table, TINY_MODEL)
    assert row["Loaded"] is True and row["Memory (MB)"] > 0
    assert "loaded" in summary and "budget" in summary

    table, summary, _ = client.predict(TINY_MODEL, api_name="/unload_model")
    row = loaded_row(table, TINY_MODEL)
    assert row["Loaded"] is False and row["Memory (MB)"] == 0


def test_unloading_a_model_that_is_not_loaded_says_so(client):
    with pytest.raises(AppError, match="is not loaded"):
        client.predict("tiny-gray-not-there", api_name="/unload_model")
    with pytest.raises(AppError, match="Choose a loaded model"):
        client.predict("", api_name="/unload_model")
