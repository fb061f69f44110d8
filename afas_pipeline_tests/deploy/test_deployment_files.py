"""The deployment files (Dockerfile, deploy/): they parse, agree with each other and with the settings the code reads
(resources.SETTINGS), and the image's command starts a code server that serves this code location. Docker, Compose
and Helm themselves do not run here; docs/scaling.md says how far they were tried."""

import json
import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from dagster._grpc.client import DagsterGrpcClient

from afas_pipeline.resources import SETTINGS
from afas_pipeline_tests.waiting import wait_until

PROJECT = Path(__file__).resolve().parents[2]
DEPLOY = PROJECT / "deploy"
PG_SETTINGS = {"DAGSTER_PG_USERNAME", "DAGSTER_PG_PASSWORD", "DAGSTER_PG_HOST", "DAGSTER_PG_DB", "DAGSTER_PG_PORT"}
#: Settings the image fixes itself (Dockerfile ENV, the shipped mappings) or that only the sandbox uses.
SET_BY_THE_IMAGE = {"DAGSTER_HOME", "AFAS_PIPELINE_STATE", "AFAS_PIPELINE_STORAGE", "AFAS_PIPELINE_MAPPINGS",
                    "AFAS_PIPELINE_SANDBOX_URL"}


def _dockerfile() -> tuple[dict[str, str], list[str]]:
    """The Dockerfile's ENV settings and its CMD (exec form)."""
    text = PROJECT.joinpath("Dockerfile").read_text().replace("\\\n", " ")
    env = {}
    for line in re.findall(r"^ENV (.+)$", text, re.M):
        env |= dict(pair.split("=", 1) for pair in line.split())
    (cmd,) = re.findall(r"^CMD (\[.+\])$", text, re.M)
    return env, json.loads(cmd)


def _compose() -> dict:
    return yaml.safe_load(DEPLOY.joinpath("docker-compose.yml").read_text())


def _helm() -> dict:
    return yaml.safe_load(DEPLOY.joinpath("helm", "values.yaml").read_text())


def test_env_example_names_every_setting_a_deployment_gives_and_nothing_else():
    text = DEPLOY.joinpath("env.example").read_text()
    names = re.findall(r"^(?:# )?([A-Z][A-Z0-9_]+)=", text, re.M)
    assert len(names) == len(set(names))
    assert set(names) == (set(SETTINGS) - SET_BY_THE_IMAGE) | PG_SETTINGS
    # Only the Postgres settings are live lines, and none holds a password.
    live = dict(re.findall(r"^([A-Z][A-Z0-9_]+)=(.*)$", text, re.M))
    assert set(live) == PG_SETTINGS and live["DAGSTER_PG_PASSWORD"] == ""


def test_the_image_sets_the_settings_it_fixes_where_compose_and_helm_mount_the_state():
    env, _ = _dockerfile()
    assert {"DAGSTER_HOME", "AFAS_PIPELINE_STATE", "AFAS_PIPELINE_STORAGE"} <= set(env) <= set(SETTINGS) | {
        "PYTHONDONTWRITEBYTECODE", "PYTHONUNBUFFERED"}
    state_dir = str(Path(env["AFAS_PIPELINE_STATE"]).parent)
    assert env["AFAS_PIPELINE_STORAGE"].startswith(state_dir + "/")
    assert f"state:{state_dir}" in _compose()["services"]["code"]["volumes"]
    (deployment,) = _helm()["dagster-user-deployments"]["deployments"]
    assert [m["mountPath"] for m in deployment["volumeMounts"]] == [state_dir]
    assert _helm_env(deployment)["AFAS_PIPELINE_STORAGE"] == env["AFAS_PIPELINE_STORAGE"]


def _helm_env(deployment: dict) -> dict:
    """The deployment's env (a list of Kubernetes EnvVars) as name -> value, or -> valueFrom."""
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in deployment["env"]}


def test_compose_and_helm_keep_the_sync_state_in_postgres_with_the_password_out_of_its_url():
    from sqlalchemy.engine import make_url

    from afas_pipeline.sync.state import state_url_problem

    services = _compose()["services"]
    compose_env = services["code"]["environment"]
    helm = _helm()
    helm_env = _helm_env(helm["dagster-user-deployments"]["deployments"][0])
    compose_url = re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", compose_env["AFAS_PIPELINE_STATE"])  # as compose reads it
    for url in (compose_url, helm_env["AFAS_PIPELINE_STATE"]):
        assert state_url_problem(url) is None
        parsed = make_url(url)
        assert (parsed.username, parsed.password, parsed.database) == ("dagster", None, "afas_state")
    assert (make_url(compose_url).host, make_url(compose_url).port) == ("postgres", int(compose_env["DAGSTER_PG_PORT"]))
    assert compose_env["PGPASSWORD"] == services["postgres"]["environment"]["POSTGRES_PASSWORD"]
    assert "./postgres-init:/docker-entrypoint-initdb.d:ro" in services["postgres"]["volumes"]
    assert "CREATE DATABASE afas_state;" in DEPLOY.joinpath("postgres-init", "afas_state.sql").read_text()
    assert helm_env["PGPASSWORD"] == {"secretKeyRef": {"name": helm["global"]["postgresqlSecretName"],
                                                       "key": "postgresql-password"}}


def test_compose_runs_one_image_on_postgres_with_secrets_only_from_env():
    compose = _compose()
    services = compose["services"]
    assert set(services) == {"postgres", "code", "webserver", "daemon"}
    images = {services[s]["image"] for s in ("code", "webserver", "daemon")}
    helm_image = _helm()["dagster-user-deployments"]["deployments"][0]["image"]
    assert images == {f"{helm_image['repository']}:{helm_image['tag']}"}
    assert (DEPLOY / services["code"]["build"]["context"] / "Dockerfile").resolve() == PROJECT / "Dockerfile"
    assert services["code"]["env_file"] == [".env"]
    for name in ("code", "webserver", "daemon"):
        env = services[name]["environment"]
        assert set(env) == PG_SETTINGS | {"AFAS_PIPELINE_STATE", "PGPASSWORD"} and env["DAGSTER_PG_HOST"] == "postgres"
        assert "./dagster.postgres.yaml:/opt/dagster/home/dagster.yaml:ro" in services[name]["volumes"]
    # Every value taken from the host is a ${NAME} of the Postgres settings; no literal secret in the file.
    raw = DEPLOY.joinpath("docker-compose.yml").read_text()
    assert set(re.findall(r"(?<!\$)\$\{([A-Z_]+)", raw)) <= PG_SETTINGS  # $${X}: the container's own
    assert services["postgres"]["environment"]["POSTGRES_PASSWORD"].startswith("${DAGSTER_PG_PASSWORD:?")
    workspace = yaml.safe_load(DEPLOY.joinpath("workspace.yaml").read_text())
    _, cmd = _dockerfile()
    assert workspace["load_from"][0]["grpc_server"]["port"] == int(cmd[cmd.index("-p") + 1])


def test_helm_values_deploy_the_image_s_code_location_with_secrets_by_reference():
    helm = _helm()
    _, cmd = _dockerfile()
    (deployment,) = helm["dagster-user-deployments"]["deployments"]
    assert deployment["codeServerArgs"] == cmd[cmd.index("-m"):]
    assert deployment["port"] == int(cmd[cmd.index("-p") + 1])
    assert deployment["envSecrets"] == [{"name": "afas-pipeline-env"}]
    assert helm["runLauncher"]["type"] == "K8sRunLauncher"
    assert helm["runLauncher"]["config"]["k8sRunLauncher"]["envSecrets"] == [{"name": "afas-pipeline-env"}]
    postgres_yaml = yaml.safe_load(DEPLOY.joinpath("dagster.postgres.yaml").read_text())
    assert helm["postgresql"]["postgresqlScheme"] == postgres_yaml["storage"]["postgres"]["postgres_db"]["scheme"]
    assert "postgresqlPassword" not in helm["postgresql"] and helm["generatePostgresqlPasswordSecret"] is False
    # The instance settings of dagster.yaml, in the chart's names.
    embedded = yaml.safe_load(PROJECT.joinpath("dagster.yaml").read_text())
    assert helm["concurrency"] == {"enabled": True, "runs": {
        "maxConcurrentRuns": embedded["concurrency"]["runs"]["max_concurrent_runs"]}, "pools": {
        "granularity": embedded["concurrency"]["pools"]["granularity"],
        "defaultLimit": embedded["concurrency"]["pools"]["default_limit"]}}
    assert helm["dagsterDaemon"]["runRetries"]["maxRetries"] == embedded["run_retries"]["max_retries"]
    assert helm["pythonLogs"]["managedPythonLoggers"] == embedded["python_logs"]["managed_python_loggers"]


def test_dagster_postgres_yaml_reads_exactly_the_postgres_settings():
    text = DEPLOY.joinpath("dagster.postgres.yaml").read_text()
    assert set(re.findall(r"\{env: ([A-Z_]+)\}", text)) == PG_SETTINGS


@pytest.fixture
def code_server(tmp_path):
    """The Dockerfile's CMD, run as it is but on a free port, with this venv's `dagster`."""
    _, cmd = _dockerfile()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd[cmd.index("-p") + 1] = str(port)
    env = {k: v for k, v in os.environ.items() if k not in SETTINGS} | {"DAGSTER_HOME": str(tmp_path)}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    # Its log to a file, not a pipe: a pipe nobody reads fills up, and a server blocked writing its log does not stop.
    log = tmp_path / "code-server.log"
    # Dagster gives SIGTERM the handler SIGINT has; a shell that starts the tests in the background has them ignore
    # SIGINT, and the child would inherit that: SIGTERM ignored, and the server never stops. The child gets SIGINT
    # handled (a handler is reset to the default on exec; an ignored signal stays ignored), as `afas-pipeline up`
    # does for its children (`cli._spawn`).
    ignored = signal.getsignal(signal.SIGINT) == signal.SIG_IGN
    if ignored:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with log.open("wb") as err:
            server = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=err,
                                      start_new_session=True)
    finally:
        if ignored:
            signal.signal(signal.SIGINT, signal.SIG_IGN)
    server.log = log
    try:
        yield port, server
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            raise AssertionError(f"the code server did not stop on SIGTERM: {log.read_text()[-2000:]}") from None


def test_the_image_s_command_starts_a_code_server_that_serves_the_code_location(code_server):
    port, server = code_server
    client = DagsterGrpcClient(port=port, host="127.0.0.1")

    def listed() -> dict | None:
        assert server.poll() is None, server.log.read_text()[-2000:]
        try:
            return json.loads(client.list_repositories())
        except Exception:  # not listening yet, or still loading the definitions
            return None

    wait_until(listed, timeout_s=120, what="the code server answering with its repositories")
    pointer = listed()["repository_code_pointer_dict"]["__repository__"]
    assert (pointer["module"], pointer["fn_name"]) == ("afas_pipeline.definitions", "defs")
    # The probe the Helm chart runs by default (dagster api grpc-health-check) passes too.
    probe = subprocess.run([str(Path(sys.executable).parent / "dagster"), "api", "grpc-health-check", "-p",
                            str(port)], capture_output=True, text=True, timeout=120)
    assert probe.returncode == 0, probe.stdout + probe.stderr
