"""Bad settings say what is wrong in one line: the setting, the problem and the fix, never a secret.

Each bad setting is checked once, where the resources are chosen (`afas_pipeline/resources.py`): the same
line stops `afas-pipeline` (exit code 1, no traceback) and the Dagster code location from loading.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from afas_pipeline.cli import main
from afas_pipeline.resources import SETTINGS, ConfigurationError, build_resources, check_settings
from afas_pipeline_tests.suite_settings import SUITE_ENV

TOKEN = "3F4C8A34E5A41B1BD3996776431E1EB94C5CF79EE3985EA2085301168734E371"
SECRET = "s3cr3t-spotler-value"
AFAS = {"AFAS_TOKEN": TOKEN, "AFAS_ENVIRONMENT_ID": "12345"}
SPOTLER = {"SPOTLER_CONSUMER_KEY": "my-key", "SPOTLER_CONSUMER_SECRET": SECRET}
MC_KEY = "0123456789abcdef0123456789abcdef-us21"
MAILCHIMP = {"MAILCHIMP_API_KEY": MC_KEY, "MAILCHIMP_LIST_ID": "a1b2c3d4e5"}
SHIPPED_MAPPINGS = Path(__file__).resolve().parents[1] / "mappings"


def _file(tmp_path: Path) -> str:
    path = tmp_path / "a-file"
    path.write_text("x")
    return str(path)


def _mappings_without_spotler(tmp_path: Path) -> str:
    folder = tmp_path / "mappings"
    folder.mkdir()
    for name in ("afas_sources.yaml", "mailchimp.yaml", "xelion.yaml"):
        (folder / name).write_text((SHIPPED_MAPPINGS / name).read_text())
    return str(folder)


# (name, settings, the setting the line must name, a fragment of the fix); a callable builds paths.
BAD_SETTINGS = [
    ("token empty", {"AFAS_TOKEN": "", "AFAS_BASE_URL": "https://12345.rest.afas.online/ProfitRestServices"},
     "AFAS_TOKEN", "set AFAS_TOKEN"),
    ("token only", {"AFAS_TOKEN": TOKEN}, "AFAS_ENVIRONMENT_ID", "environment number"),
    ("environment id without token", {"AFAS_ENVIRONMENT_ID": "12345"}, "AFAS_TOKEN", "set AFAS_TOKEN"),
    ("token too short", {**AFAS, "AFAS_TOKEN": TOKEN[:63]}, "AFAS_TOKEN", "64 hexadecimal"),
    ("token not hex", {**AFAS, "AFAS_TOKEN": "g" * 64}, "AFAS_TOKEN", "64 hexadecimal"),
    ("environment id not numeric", {**AFAS, "AFAS_ENVIRONMENT_ID": "abc"}, "AFAS_ENVIRONMENT_ID", "digits"),
    ("environment id with a URL", {**AFAS, "AFAS_ENVIRONMENT_ID": "https://12345.rest.afas.online"},
     "AFAS_ENVIRONMENT_ID", "digits"),
    ("environment unknown", {**AFAS, "AFAS_ENVIRONMENT": "prod"}, "AFAS_ENVIRONMENT", "production, test or accept"),
    ("base url malformed", {"AFAS_TOKEN": TOKEN, "AFAS_BASE_URL": "not a url"}, "AFAS_BASE_URL", "https://"),
    ("base url ftp", {"AFAS_TOKEN": TOKEN, "AFAS_BASE_URL": "ftp://afas.example/ProfitRestServices"},
     "AFAS_BASE_URL", "https://"),
    ("base url bad port", {"AFAS_TOKEN": TOKEN, "AFAS_BASE_URL": "https://afas.example:99999/x"},
     "AFAS_BASE_URL", "https://"),
    ("base url plain http", {"AFAS_TOKEN": TOKEN, "AFAS_BASE_URL": "http://12345.rest.afas.online/ProfitRestServices"},
     "AFAS_BASE_URL", "use https"),
    ("integration id with a line break", {**AFAS, "AFAS_INTEGRATION_ID": "12345_1\r\nX-Injected: 1"},
     "AFAS_INTEGRATION_ID", "on one line"),
    ("spotler key only", {"SPOTLER_CONSUMER_KEY": "my-key"}, "SPOTLER_CONSUMER_SECRET", "set both"),
    ("spotler secret only", {"SPOTLER_CONSUMER_SECRET": SECRET}, "SPOTLER_CONSUMER_KEY", "set both"),
    ("spotler secret with a newline", {**SPOTLER, "SPOTLER_CONSUMER_SECRET": SECRET + "\n"},
     "SPOTLER_CONSUMER_SECRET", "on one line"),
    ("spotler base url plain http", {**SPOTLER, "SPOTLER_BASE_URL": "http://restapi.mailplus.nl/integrationservice-1.1.0"},
     "SPOTLER_BASE_URL", "use https"),
    ("spotler base url without credentials", {"SPOTLER_BASE_URL": "https://restapi.mailplus.nl/integrationservice-1.1.0"},
     "SPOTLER_BASE_URL", "set the key and secret too"),
    ("mailchimp key only", {"MAILCHIMP_API_KEY": MC_KEY}, "MAILCHIMP_LIST_ID", "set both"),
    ("mailchimp list only", {"MAILCHIMP_LIST_ID": "a1b2c3d4e5"}, "MAILCHIMP_API_KEY", "set both"),
    ("mailchimp key without data centre", {**MAILCHIMP, "MAILCHIMP_API_KEY": MC_KEY[:32]}, "MAILCHIMP_API_KEY",
     "the data centre"),
    ("mailchimp base url plain http", {**MAILCHIMP, "MAILCHIMP_BASE_URL": "http://us21.api.mailchimp.com/3.0"},
     "MAILCHIMP_BASE_URL", "use https"),
    ("mailchimp base url without key", {"MAILCHIMP_BASE_URL": "https://us21.api.mailchimp.com/3.0"},
     "MAILCHIMP_BASE_URL", "set the key"),
    ("sandbox url without scheme", {"AFAS_PIPELINE_SANDBOX_URL": "localhost:8765"}, "AFAS_PIPELINE_SANDBOX_URL",
     "http://127.0.0.1:8765"),
    ("sandbox url on another machine", {"AFAS_PIPELINE_SANDBOX_URL": "http://192.0.2.10:8765"},
     "AFAS_PIPELINE_SANDBOX_URL", "127.0.0.1"),
    ("storage is a file", lambda tmp: {"AFAS_PIPELINE_STORAGE": _file(tmp)}, "AFAS_PIPELINE_STORAGE", "folder"),
    ("storage under a file", lambda tmp: {"AFAS_PIPELINE_STORAGE": _file(tmp) + "/storage"},
     "AFAS_PIPELINE_STORAGE", "folder"),
    ("state is a folder", lambda tmp: {"AFAS_PIPELINE_STATE": str(tmp)}, "AFAS_PIPELINE_STATE", "sync_state.sqlite"),
    ("state URL of another database", {"AFAS_PIPELINE_STATE": f"mysql://afas:{SECRET}@db:3306/state"},
     "AFAS_PIPELINE_STATE", "postgresql://"),
    ("state URL without a database", {"AFAS_PIPELINE_STATE": f"postgresql://afas:{SECRET}@db:5432"},
     "AFAS_PIPELINE_STATE", "/afas_state"),
    ("mappings folder missing", lambda tmp: {"AFAS_PIPELINE_MAPPINGS": str(tmp / "nope")},
     "AFAS_PIPELINE_MAPPINGS", "does not exist"),
    ("mappings folder is a file", lambda tmp: {"AFAS_PIPELINE_MAPPINGS": _file(tmp)}, "AFAS_PIPELINE_MAPPINGS",
     "is a file"),
    ("mappings without spotler.yaml", lambda tmp: {"AFAS_PIPELINE_MAPPINGS": _mappings_without_spotler(tmp)},
     "AFAS_PIPELINE_MAPPINGS", "spotler.yaml"),
    ("hash salt empty", {"AFAS_PIPELINE_HASH_SALT": ""}, "AFAS_PIPELINE_HASH_SALT", "unsalted"),
    ("dagster home missing", lambda tmp: {"DAGSTER_HOME": str(tmp / "nope")}, "DAGSTER_HOME", "mkdir -p"),
    ("dagster home is a file", lambda tmp: {"DAGSTER_HOME": _file(tmp)}, "DAGSTER_HOME", "existing folder"),
    ("dagster home relative", {"DAGSTER_HOME": "relative/home"}, "DAGSTER_HOME", "absolute"),
]


@pytest.fixture
def clean_env(monkeypatch):
    """No pipeline setting from the machine running the tests leaks in."""
    for name in set(SETTINGS) - set(SUITE_ENV):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def _settings(given, tmp_path: Path) -> dict[str, str]:
    return given(tmp_path) if callable(given) else dict(given)


@pytest.mark.parametrize("name,given,setting,fix", BAD_SETTINGS, ids=[case[0] for case in BAD_SETTINGS])
def test_a_bad_setting_is_one_line_naming_the_setting_and_the_fix(name, given, setting, fix, tmp_path):
    with pytest.raises(ConfigurationError) as caught:
        check_settings(_settings(given, tmp_path))
    [line] = caught.value.problems
    assert setting in line and fix in line, line
    assert "\n" not in line and "\r" not in line
    assert TOKEN not in line and SECRET not in line and TOKEN[:63] not in line and MC_KEY[:32] not in line


@pytest.mark.parametrize("name,given,setting,fix", BAD_SETTINGS, ids=[case[0] for case in BAD_SETTINGS])
def test_sync_refuses_a_bad_setting_with_that_line_and_exit_code_1(name, given, setting, fix, tmp_path, clean_env,
                                                                   capsys):
    settings = _settings(given, tmp_path)
    for key, value in settings.items():
        clean_env.setenv(key, value)
    assert main(["sync", "--partition", "2026-11-22-06:00"]) == 1
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and setting in lines[0], err
    assert TOKEN not in err and SECRET not in err and MC_KEY[:32] not in err


def test_several_bad_settings_are_all_named_one_line_each():
    with pytest.raises(ConfigurationError) as caught:
        check_settings({"AFAS_TOKEN": "short", "AFAS_ENVIRONMENT_ID": "abc", "SPOTLER_CONSUMER_KEY": "k"})
    assert len(caught.value.problems) == 3
    assert [p.split(" ", 1)[0] for p in caught.value.problems] == [
        "AFAS_TOKEN", "AFAS_ENVIRONMENT_ID", "SPOTLER_CONSUMER_SECRET"]


@pytest.mark.parametrize("settings", [
    {},
    {**AFAS, **SPOTLER, **MAILCHIMP, "AFAS_ENVIRONMENT": "test", "AFAS_INTEGRATION_ID": "12345_123456"},
    {"AFAS_TOKEN": f"<token><version>1</version><data>{TOKEN}</data></token>",
     "AFAS_BASE_URL": "http://127.0.0.1:8765/afas/ProfitRestServices"},
    {"AFAS_PIPELINE_SANDBOX_URL": "http://localhost:9999", "AFAS_PIPELINE_HASH_SALT": "our own salt"},
], ids=["sandbox", "production", "token xml on loopback", "sandbox elsewhere on this machine"])
def test_good_settings_pass(settings):
    check_settings(settings)
    assert set(build_resources(settings)) == {"afas", "spotler", "mailchimp", "xelion", "sync_state", "io_manager",
                                              "alerts"}


def test_the_code_location_fails_to_load_with_the_same_line(tmp_path):
    bad = {"AFAS_TOKEN": TOKEN, "AFAS_BASE_URL": "http://12345.rest.afas.online/ProfitRestServices"}
    with pytest.raises(ConfigurationError) as caught:
        check_settings(bad)
    env = {key: value for key, value in os.environ.items() if key not in SETTINGS or key in SUITE_ENV}
    loaded = subprocess.run([sys.executable, "-c", "import afas_pipeline.definitions"], capture_output=True,
                            text=True, env={**env, **bad}, timeout=300)
    assert loaded.returncode != 0
    assert loaded.stderr.splitlines()[-1] == f"afas_pipeline.resources.ConfigurationError: {caught.value}"
    assert TOKEN not in loaded.stderr
