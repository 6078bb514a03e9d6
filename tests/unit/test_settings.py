"""Settings come from the environment first, then from a running `fleet up`, with clear errors."""

import json

import pytest

from services.mesh.settings import SettingsError, load_settings


def test_without_nats_the_error_says_how_to_get_one(tmp_path):
    with pytest.raises(SettingsError, match="FLEET_NATS_URL.*fleet up"):
        load_settings({"FLEET_DATA_DIR": str(tmp_path)})


def test_the_environment_wins_over_the_endpoints_file(tmp_path):
    (tmp_path / "endpoints.json").write_text(json.dumps({"nats_url": "nats://file:1", "llm_base_url": "http://f/v1"}))
    settings = load_settings({"FLEET_DATA_DIR": str(tmp_path), "FLEET_NATS_URL": "nats://env:2"})
    assert settings.nats_url == "nats://env:2"
    assert settings.llm_base_url == "http://f/v1"


def test_the_api_key_is_read_from_a_file_and_never_shown(tmp_path):
    key_file = tmp_path / "key"
    key_file.write_text("sk-secret\n")
    settings = load_settings({"FLEET_NATS_URL": "nats://x:1", "FLEET_LLM_API_KEY_FILE": str(key_file)})
    assert settings.llm_api_key == "sk-secret"
    assert "sk-secret" not in repr(settings)


@pytest.mark.parametrize(("name", "value"), [("FLEET_COUNCIL_SIZE", "three"), ("FLEET_LLM_TIMEOUT_S", "-1")])
def test_a_malformed_number_names_the_variable(name, value):
    with pytest.raises(SettingsError, match=name):
        load_settings({"FLEET_NATS_URL": "nats://x:1", name: value})
