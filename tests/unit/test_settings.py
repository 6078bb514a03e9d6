"""Settings come from the environment first, then from a running `fleet up`, with clear errors."""

import json

import pytest

from contracts.events import Role
from services.agents.adapters.wire import ResponseFormat
from services.mesh.settings import RESPONSE_FORMATS, SettingsError, load_settings

NATS = {"FLEET_NATS_URL": "nats://x:1"}


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
    settings = load_settings({**NATS, "FLEET_LLM_API_KEY_FILE": str(key_file)})
    assert settings.llm_api_key == "sk-secret"
    assert "sk-secret" not in repr(settings)


@pytest.mark.parametrize(
    ("name", "value"),
    [("FLEET_LLM_MAX_TOKENS", "many"), ("FLEET_AGENT_CONCURRENCY", "0"), ("FLEET_LLM_TIMEOUT_S", "-1")],
)
def test_a_malformed_number_names_the_variable(name, value):
    with pytest.raises(SettingsError, match=name):
        load_settings({**NATS, name: value})


def test_json_is_asked_for_the_openai_and_vllm_way_unless_told_otherwise():
    assert load_settings(NATS).llm_response_format == "json_schema"
    assert load_settings({**NATS, "FLEET_LLM_RESPONSE_FORMAT": "json_object"}).llm_response_format == "json_object"


def test_an_unknown_response_format_is_refused_with_the_allowed_ones():
    reason = "FLEET_LLM_RESPONSE_FORMAT='grammar' must be one of json_schema, json_object"
    with pytest.raises(SettingsError, match=reason):
        load_settings({**NATS, "FLEET_LLM_RESPONSE_FORMAT": "grammar"})


def test_the_allowed_response_formats_are_exactly_the_dialects_agents_speak():
    assert set(RESPONSE_FORMATS) == {dialect.value for dialect in ResponseFormat}


@pytest.mark.parametrize("value", ["-1", "70000", "http", ""])
def test_a_metrics_port_that_is_no_port_names_the_variable(value):
    with pytest.raises(SettingsError, match="FLEET_METRICS_PORT"):
        load_settings({**NATS, "FLEET_METRICS_PORT": value})


def test_the_metrics_port_defaults_to_any_free_one_and_takes_a_fixed_one():
    assert load_settings(NATS).metrics_port == 0
    assert load_settings({**NATS, "FLEET_METRICS_PORT": "9464"}).metrics_port == 9464


def test_a_nats_user_reads_its_password_from_a_mounted_file_never_shown_and_gets_its_own_inboxes(tmp_path):
    secret = tmp_path / "password"
    secret.write_text("s3cret\n")

    settings = load_settings({**NATS, "FLEET_DATA_DIR": str(tmp_path), "FLEET_NATS_USER": "dispatch",
                              "FLEET_NATS_PASSWORD_FILE": str(secret)})

    assert settings.nats_options() == {"user": "dispatch", "password": "s3cret", "inbox_prefix": "_INBOX.dispatch"}
    assert "s3cret" not in repr(settings)


def test_a_nats_user_without_a_password_is_a_clear_error(tmp_path):
    with pytest.raises(SettingsError, match="FLEET_NATS_USER='planning' needs FLEET_NATS_PASSWORD"):
        load_settings({**NATS, "FLEET_DATA_DIR": str(tmp_path), "FLEET_NATS_USER": "planning"})


def test_the_cli_connects_as_the_operator_that_fleet_up_auth_wrote_down(tmp_path):
    secret = tmp_path / "operator.password"
    secret.write_text("op")
    (tmp_path / "endpoints.json").write_text(json.dumps(
        {"nats_url": "nats://file:1", "nats_user": "operator", "nats_password_file": str(secret)}))

    settings = load_settings({"FLEET_DATA_DIR": str(tmp_path)})

    assert (settings.nats_user, settings.nats_password) == ("operator", "op")


def test_without_a_nats_user_the_client_connects_without_credentials(tmp_path):
    settings = load_settings({**NATS, "FLEET_DATA_DIR": str(tmp_path)})

    assert settings.nats_options() == {} and settings.inbox_prefix == "_INBOX"


@pytest.mark.parametrize(("value", "thinking"), [("on", True), ("off", False)])
def test_thinking_is_on_unless_switched_off(value, thinking):
    assert load_settings({**NATS, "FLEET_LLM_THINKING": value}).llm_thinking is thinking
    with pytest.raises(SettingsError, match="FLEET_LLM_THINKING"):
        load_settings({**NATS, "FLEET_LLM_THINKING": "maybe"})


# --- context budgets --------------------------------------------------------------------------


def test_the_context_budgets_default_to_the_seeds_figures():
    budgets = load_settings(NATS).context_budget_tokens
    assert budgets == {Role.ARCHITECT: 8192, Role.DEV: 4096, Role.QA: 4096, Role.DEVOPS: 4096, Role.DATA: 4096}


def test_one_number_sets_every_roles_context_budget_and_a_named_role_its_own():
    def budgets(value: str) -> dict[Role, int]:
        return load_settings({**NATS, "FLEET_CONTEXT_BUDGET_TOKENS": value}).context_budget_tokens

    assert budgets("2000") == dict.fromkeys(Role, 2000)
    assert budgets("ARCHITECT=6000, 1000 ,QA=1500") == {
        Role.ARCHITECT: 6000, Role.QA: 1500, Role.DEV: 1000, Role.DEVOPS: 1000, Role.DATA: 1000}


def test_a_named_role_alone_changes_only_its_own_budget():
    budgets = load_settings({**NATS, "FLEET_CONTEXT_BUDGET_TOKENS": "DEV=100"}).context_budget_tokens
    assert budgets[Role.DEV] == 100 and budgets[Role.ARCHITECT] == 8192 and budgets[Role.QA] == 4096


@pytest.mark.parametrize(("value", "named"), [("ARCHITEKT=8192", "ARCHITEKT"), ("DEV=lots", "lots"), ("0", "'0'"),
                                              ("QA=-5", "QA=-5")])
def test_a_malformed_context_budget_names_the_variable_and_what_is_wrong(value, named):
    with pytest.raises(SettingsError, match=f"FLEET_CONTEXT_BUDGET_TOKENS.*{named}"):
        load_settings({**NATS, "FLEET_CONTEXT_BUDGET_TOKENS": value})


@pytest.mark.parametrize(("value", "named"), [
    ("ARCHITECT=²", "'ARCHITECT=²'"),  # a digit to str.isdigit, not to int()
    ("DEV=٣", "'DEV=٣'"),
    ("=5", "'=5'.*names no role"),  # not "every role": a bare number says that
    (" = 5", "'= 5'.*names no role"),
    ("ARCHITECT=1,ARCHITECT=2", "'ARCHITECT=2'.*ARCHITECT's budget a second time"),
    ("1000,2000", "'2000'.*every role's budget a second time"),
])
def test_a_context_budget_that_is_no_ascii_number_names_no_role_or_is_set_twice_is_refused(value, named):
    with pytest.raises(SettingsError, match=f"FLEET_CONTEXT_BUDGET_TOKENS.*{named}"):
        load_settings({**NATS, "FLEET_CONTEXT_BUDGET_TOKENS": value})


def test_a_role_and_every_role_may_each_be_given_once_in_any_order():
    budgets = load_settings({**NATS, "FLEET_CONTEXT_BUDGET_TOKENS": "ARCHITECT=1,2"}).context_budget_tokens
    assert budgets == {Role.ARCHITECT: 1, Role.DEV: 2, Role.QA: 2, Role.DEVOPS: 2, Role.DATA: 2}
