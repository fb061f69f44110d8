"""The Xelion settings (`afas_pipeline/resources.py`): the sandbox by default, production with XELION_BASE_URL,
XELION_USER_NAME and XELION_PASSWORD together; every bad setting one line naming the setting and the fix, never
the password."""

from __future__ import annotations

import dagster as dg
import pytest

from afas_pipeline.cli import main
from afas_pipeline.resources import (
    SANDBOX_XELION_PASSWORD,
    SANDBOX_XELION_USER,
    SETTINGS,
    ConfigurationError,
    build_resources,
    check_settings,
    sandbox_url,
    xelion_client,
    xelion_mode,
)
from afas_pipeline.xelion.client import XelionClient
from afas_sandbox.xelion import store

PASSWORD = "Xelion-W8woord!"
XELION = {"XELION_BASE_URL": "https://pbx.voorbeeld.nl/api/v1/master", "XELION_USER_NAME": "afas-koppeling",
          "XELION_PASSWORD": PASSWORD}
OTHERS = {"AFAS_TOKEN": "3F4C8A34E5A41B1BD3996776431E1EB94C5CF79EE3985EA2085301168734E371",
          "AFAS_ENVIRONMENT_ID": "12345", "SPOTLER_CONSUMER_KEY": "k", "SPOTLER_CONSUMER_SECRET": "s",
          "MAILCHIMP_API_KEY": "0123456789abcdef0123456789abcdef-us21", "MAILCHIMP_LIST_ID": "a1b2c3d4e5"}

# (name, settings, the setting the line must name, a fragment of the fix)
BAD_SETTINGS = [
    ("password missing", {**XELION, "XELION_PASSWORD": ""}, "XELION_PASSWORD",
     "set XELION_BASE_URL, XELION_USER_NAME and XELION_PASSWORD"),
    ("user name missing", {**XELION, "XELION_USER_NAME": " "}, "XELION_USER_NAME", "or none of them for the sandbox"),
    ("base url missing", {"XELION_USER_NAME": "u", "XELION_PASSWORD": PASSWORD}, "XELION_BASE_URL",
     "for production Xelion"),
    ("base url plain http", {**XELION, "XELION_BASE_URL": "http://pbx.voorbeeld.nl/api/v1/master"},
     "XELION_BASE_URL", "use https"),
    ("base url not a url", {**XELION, "XELION_BASE_URL": "pbx.voorbeeld.nl/api/v1/master"}, "XELION_BASE_URL",
     "https://xelion.example.nl/api/v1/master"),
    ("password with a line break", {**XELION, "XELION_PASSWORD": PASSWORD + "\r\n"}, "XELION_PASSWORD", "on one line"),
    ("user name with a space", {**XELION, "XELION_USER_NAME": "afas koppeling"}, "XELION_USER_NAME", "login name"),
    ("user space with a space", {"XELION_USER_SPACE": "afas pipeline"}, "XELION_USER_SPACE", "afas-pipeline-prod"),
    ("app key with a line break", {**XELION, "XELION_APP_KEY": "key\n"}, "XELION_APP_KEY", "on one line"),
]


@pytest.fixture
def clean_env(monkeypatch):
    """No pipeline setting from the machine running the tests leaks in."""
    for name in SETTINGS:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_every_xelion_setting_is_a_pipeline_setting():
    assert {"XELION_BASE_URL", "XELION_USER_NAME", "XELION_PASSWORD", "XELION_USER_SPACE", "XELION_APP_KEY"} <= set(
        SETTINGS)


@pytest.mark.parametrize("name,given,setting,fix", BAD_SETTINGS, ids=[case[0] for case in BAD_SETTINGS])
def test_a_bad_xelion_setting_is_one_line_naming_the_setting_and_the_fix(name, given, setting, fix):
    with pytest.raises(ConfigurationError) as caught:
        check_settings(given)
    [line] = caught.value.problems
    assert line.startswith(setting) and fix in line, line
    assert "\n" not in line and "\r" not in line and PASSWORD not in line
    with pytest.raises(ConfigurationError):
        xelion_mode(given)


@pytest.mark.parametrize("name,given,setting,fix", BAD_SETTINGS[:3], ids=[case[0] for case in BAD_SETTINGS[:3]])
def test_sync_refuses_a_bad_xelion_setting_with_that_line_and_exit_code_1(name, given, setting, fix, clean_env,
                                                                          capsys):
    for key, value in given.items():
        clean_env.setenv(key, value)
    assert main(["sync", "--partition", "2026-11-22-06:00"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and setting in err.splitlines()[0] and PASSWORD not in err


def test_a_lone_base_url_names_both_missing_settings_one_line_each():
    with pytest.raises(ConfigurationError) as caught:
        check_settings({"XELION_BASE_URL": XELION["XELION_BASE_URL"]})
    assert [p.split(" ", 1)[0] for p in caught.value.problems] == ["XELION_USER_NAME", "XELION_PASSWORD"]


def test_the_sandbox_is_the_default_with_its_documented_account():
    assert xelion_mode({}) == "sandbox"
    client = build_resources({"AFAS_PIPELINE_SANDBOX_URL": "http://127.0.0.1:9999"})["xelion"]
    assert isinstance(client, XelionClient)
    assert client.base_url == "http://127.0.0.1:9999/xelion/api/v1/master"
    assert (client.user_name, client.password, client.user_space) == (
        SANDBOX_XELION_USER, SANDBOX_XELION_PASSWORD, "afas-pipeline")
    assert (SANDBOX_XELION_USER, SANDBOX_XELION_PASSWORD) == (store.USER_NAME, store.PASSWORD)
    assert xelion_client({"XELION_USER_SPACE": " afas-test "}).user_space == "afas-test"


def test_the_sandbox_client_logs_in_to_the_running_sandbox(xelion_sandbox_clean, xelion_admin):
    with xelion_client({"AFAS_PIPELINE_SANDBOX_URL": xelion_sandbox_clean.url}) as client:
        assert list(client.addressables()) == []
        assert client.stats.logins == 1
        assert [s["userSpace"] for s in xelion_admin.get("sessions").json()] == ["afas-pipeline"]


def test_production_reads_the_password_and_app_key_through_env_vars(clean_env):
    settings = {**XELION, "XELION_USER_SPACE": "afas-prod", "XELION_APP_KEY": "app-123"}
    assert xelion_mode(settings) == "production"
    client = xelion_client(settings)
    assert (client.base_url, client.user_name, client.user_space) == (
        XELION["XELION_BASE_URL"], "afas-koppeling", "afas-prod")
    assert isinstance(client.password, dg.EnvVar) and client.password.env_var_name == "XELION_PASSWORD"
    assert isinstance(client.app_key, dg.EnvVar) and client.app_key.env_var_name == "XELION_APP_KEY"
    assert PASSWORD not in repr(client)
    for key, value in settings.items():
        clean_env.setenv(key, value)
    with dg.build_resources({"xelion": client}) as resources:
        assert (resources.xelion.password, resources.xelion.app_key) == (PASSWORD, "app-123")


def test_the_sandbox_url_is_needed_while_xelion_is_the_sandbox():
    assert sandbox_url(OTHERS) == "http://127.0.0.1:8765"
    assert sandbox_url({**OTHERS, **XELION}) is None
    check_settings({**OTHERS, **XELION, "AFAS_PIPELINE_SANDBOX_URL": "not checked: nothing uses the sandbox"})
