"""`afas-pipeline`: the sandbox, a one-shot sync, and the whole stack for a first look.

    afas-pipeline sandbox            serve the emulators (AFAS Profit) on localhost
    afas-pipeline sync               materialise the sync graph once, in this process
    afas-pipeline up                 sandbox + first sync + Dagster UI and daemon, schedules on
    afas-pipeline validate-mappings  check the files under mappings/ (--drift: against the live systems)
    afas-pipeline call-lookup        answer Xelion's incoming-call trigger with the caller's InSite card
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from afas_pipeline.defs import DESTINATIONS
from afas_pipeline.lib.text import one_line, printable
from afas_pipeline.lib.urls import shown_url

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SANDBOX_PORT = 8765
DEFAULT_UI_PORT = 3000
DEFAULT_LOOKUP_PORT = 8770
#: The sandbox's dataset generator takes 1 to 5,000,000 contacts.
MAX_CONTACTS = 5_000_000
#: In $DAGSTER_HOME: held while Dagster creates or migrates the instance's databases.
INSTANCE_LOCK = ".afas-pipeline-instance.lock"


class ArgumentProblem(ValueError):
    """An argument that cannot work; its message names the argument and the fix."""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="afas-pipeline", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    sandbox = sub.add_parser("sandbox", help="serve the emulators on localhost")
    _sandbox_args(sandbox)

    sync = sub.add_parser("sync", help="materialise the sync graph once, in-process, and print counts per asset")
    sync.add_argument("--cadence", choices=("full", "delta"), default="full", help="which job (default: full)")
    sync.add_argument("--partition", help="partition key, e.g. 2026-11-22-12:00 (default: the last closed window)")
    sync.add_argument("--destination", choices=DESTINATIONS, default=None,
                      help=f"sync to one destination only ({', '.join(DESTINATIONS)}; default: every destination)")

    up = sub.add_parser("up", help="sandbox, a first full sync, then the Dagster UI and daemon with schedules on")
    _sandbox_args(up)
    up.add_argument("--ui-port", type=_port_number(lowest=1), default=DEFAULT_UI_PORT,
                    help=f"Dagster UI port (default {DEFAULT_UI_PORT})")

    validate = sub.add_parser("validate-mappings", help="validate the files under mappings/ and exit")
    validate.add_argument("--drift", action="store_true",
                          help="also compare them with the live AFAS metainfo and each destination's properties "
                               "(the sandbox unless production is configured)")

    lookup = sub.add_parser(
        "call-lookup", help="answer Xelion's incoming-call trigger with a redirect to the caller's AFAS InSite card",
        description="Serve GET /xelion/incoming-call?number=<the caller's number> for Xelion's incoming-call "
                    "trigger (X2): a 302 to the InSite card (insite_url in mappings/xelion.yaml) of the AFAS "
                    "organisation or person with that number, 404 for an unknown number, 400 for no or no valid "
                    "number, 503 until the phone index is materialised. The number may be written in any common "
                    "notation (010-1234567, +31 (0)10 123 4567, 0031101234567). In Xelion, configure the trigger "
                    "URL http://<host>:<port>/xelion/incoming-call?number={remoteNumber}, with Xelion's "
                    "placeholder for the caller's number in place of {remoteNumber}. GET /healthz tells the "
                    "index's size and age. The index is the xelion_phone_index asset, read again when a sync "
                    "materialises it anew.")
    lookup.add_argument("--host", default="127.0.0.1",
                        help="interface to listen on (default 127.0.0.1; the browsers of Xelion's users must reach "
                             "it)")
    lookup.add_argument("--port", type=_port_number(lowest=0), default=DEFAULT_LOOKUP_PORT,
                        help=f"port (default {DEFAULT_LOOKUP_PORT}; 0 picks a free one)")
    lookup.add_argument("--index", type=Path, default=None,
                        help="the phone index file (default: xelion_phone_index.parquet in $AFAS_PIPELINE_STORAGE, "
                             "else in $DAGSTER_HOME/storage, else in .dagster_home/storage of the project, where "
                             "the pipeline stores it)")

    release = sub.add_parser(
        "release", help="let a quarantined rejected record be tried again by the next run",
        description="A record a destination refused in 5 runs is quarantined: no run sends it again until it is "
                    "released. Fix its data in AFAS first (the reason code names the field), then release it: the "
                    "next run sends it once more. The sync state is the pipeline's: $AFAS_PIPELINE_STATE, else "
                    "$DAGSTER_HOME/state/sync_state.sqlite. Exit code 0 released, 1 not quarantined (or a consent "
                    "refusal), 2 unknown key.")
    release.add_argument("--destination", required=True, choices=(*DESTINATIONS, "afas"),
                         help="where the record was refused; afas: the write-back and mailing-history calls to AFAS")
    release.add_argument("--key", required=True,
                         help="the record's key as <destination>_rejected holds it (external_id: the AFAS ContactId, "
                              "organisation:<id> or person:<id> for xelion, mailing_history:<mailing>:<contact>), "
                              "or its 12-character hash as the Dagster UI shows it")

    args = parser.parse_args(argv)
    if args.command == "sandbox":
        return run_sandbox(args)
    if args.command == "sync":
        try:
            return run_sync(cadence=args.cadence, partition=args.partition, destination=args.destination)
        except ArgumentProblem as exc:
            sync.print_usage(sys.stderr)
            print(f"{sync.prog}: error: {printable(exc)}", file=sys.stderr)
            return 2
    if args.command == "up":
        return run_up(args)
    if args.command == "validate-mappings":
        return validate_mappings(drift=args.drift)
    if args.command == "call-lookup":
        return run_call_lookup(args)
    if args.command == "release":
        return run_release(args)
    return 2


def _sandbox_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=_port_number(lowest=0), default=DEFAULT_SANDBOX_PORT,
                        help=f"port (default {DEFAULT_SANDBOX_PORT}; 0 picks a free one)")
    parser.add_argument("--contacts", type=_whole_number(1, MAX_CONTACTS), default=3000,
                        help=f"size of the synthetic CRM (1..{MAX_CONTACTS}; default 3000)")
    parser.add_argument("--seed", type=_whole_number(0, None), default=7,
                        help="seed of the synthetic CRM, 0 or more (same seed, same data)")
    parser.add_argument("--allow-remote-admin", action="store_true",
                        help="let other machines use the admin APIs (dataset export, faults, reset); by default "
                             "only this machine may")


def _whole_number(lowest: int, highest: int | None):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{printable(text)!r} is not a whole number") from None
        if value < lowest or (highest is not None and value > highest):
            bounds = f"from {lowest} to {highest}" if highest is not None else f"{lowest} or more"
            raise argparse.ArgumentTypeError(f"{value} is out of range: use a number {bounds}")
        return value

    return parse


def _port_number(lowest: int):
    return _whole_number(lowest, 65535)


def _error(problem: object) -> int:
    """Print each line of a problem as one `error:` line on stderr, control characters escaped; exit code 1."""
    for line in str(problem).splitlines():
        if line.strip():
            print(f"error: {printable(line.strip())}", file=sys.stderr)
    return 1


def _sandbox_server():
    """The sandbox's server module: a package of its own (an extra), which the pipeline itself never imports."""
    try:
        from afas_sandbox import server
    except ImportError as exc:
        raise SystemExit(f"error: the sandbox is not installed ({printable(exc)}): install it with "
                         "pip install 'afas-pipeline[sandbox]'") from None
    return server


def run_sandbox(args: argparse.Namespace) -> int:
    server = _sandbox_server()
    SandboxBindError, serve = server.SandboxBindError, server.serve
    try:
        serve(host=args.host, port=args.port, contacts=args.contacts, seed=args.seed,
              allow_remote_admin=args.allow_remote_admin)
    except SandboxBindError as exc:
        return _error(exc)
    return 0


def run_call_lookup(args: argparse.Namespace) -> int:
    """The X2 endpoint in the foreground; Ctrl-C stops it."""
    from afas_pipeline.mapping.errors import MappingError
    from afas_pipeline.xelion import lookup
    from afas_pipeline.xelion.config import default_settings

    try:
        settings = default_settings()
    except MappingError as exc:
        return _error(exc)
    index = args.index or lookup.default_index_path(os.environ, PROJECT_ROOT / ".dagster_home")
    try:
        lookup.serve(host=args.host, port=args.port, index_path=index, settings=settings)
    except lookup.LookupBindError as exc:
        return _error(exc)
    except KeyboardInterrupt:  # uvicorn has shut down and raises the Ctrl-C it caught again
        pass
    return 0


def run_release(args: argparse.Namespace) -> int:
    """Release one quarantined record (`SyncState.release`) in the sync state the pipeline uses. One line: released
    (exit 0), not quarantined (1) or unknown key (2); only a release changes the state."""
    from afas_pipeline.chain.writer import CONSENT_REASON
    from afas_pipeline.lib.privacy import hash_key
    from afas_pipeline.sync.state import StateError, SyncState, SyncStateResource

    path = SyncStateResource(path=os.environ.get("AFAS_PIPELINE_STATE") or None).state_path()
    d, key = args.destination, printable(args.key)
    if not path.is_file():
        print(f"unknown key: there is no sync state at {path}; run this where the pipeline runs, with its "
              "AFAS_PIPELINE_STATE or DAGSTER_HOME", file=sys.stderr)
        return 2
    try:
        state = SyncState(path)
        rejected = state.rejected(d)
    except StateError as exc:
        return _error(exc)
    found = rejected[(rejected["external_id"] == args.key) | (rejected["external_id"].map(hash_key) == args.key)]
    if found.empty:
        print(f"unknown key: {d} has no rejected record {key} (give the external_id of {d}_rejected or the hash "
              "the Dagster UI shows, made with the pipeline's AFAS_PIPELINE_HASH_SALT); nothing changed",
              file=sys.stderr)
        return 2
    row = found.iloc[0]
    shown = f"{d} {key} ({printable(row['reason'])}, {row['attempts']} attempts)"
    if str(row["reason"]).startswith(CONSENT_REASON):
        print(f"not released: {shown} is refused for {d}'s own consent reasons, an outcome and not a failure: "
              "only the person can change it; nothing changed", file=sys.stderr)
        return 1
    if not state.release(d, row["external_id"]):
        print(f"not quarantined: {shown} is retried by the next run anyway; nothing changed", file=sys.stderr)
        return 1
    print(f"released: {shown}; the next run sends it again")
    return 0


def validate_mappings(drift: bool = False) -> int:
    """Load every mapping file (rules R5, R8, R9, R13 and the file format); with `drift`, also compare
    them with the systems. Prints one line per problem; exit code 1 when there is any."""
    from afas_pipeline.afas.errors import AfasError
    from afas_pipeline.afas.sources import MAPPINGS_DIR, MappingError, load_sources
    from afas_pipeline.mapping.load import load_mapping, mappings_folder_problems
    from afas_pipeline.resources import DESTINATIONS
    from afas_pipeline.spotler.errors import SpotlerError
    from afas_pipeline.xelion.config import FILE_NAME as XELION_SETTINGS
    from afas_pipeline.xelion.config import load_settings, xelion_drift

    missing = mappings_folder_problems(MAPPINGS_DIR, DESTINATIONS)
    for problem in missing:
        print(f"invalid: {problem}", file=sys.stderr)
    if missing:
        return 1
    problems = 0
    try:
        sources = load_sources()
        print(f"ok: {MAPPINGS_DIR / 'afas_sources.yaml'}")
    except MappingError as exc:
        print(f"invalid: {exc}", file=sys.stderr)
        return 1
    mappings = {}
    for path in sorted(MAPPINGS_DIR.glob("*.yaml")):
        if path.name == "afas_sources.yaml":
            continue
        try:
            if path.name == XELION_SETTINGS:
                load_settings(path, sources=sources)
            else:
                mappings[path] = load_mapping(path)
            print(f"ok: {path}")
        except MappingError as exc:
            problems += 1
            print(f"invalid: {exc}", file=sys.stderr)
    if drift and not problems:
        from afas_pipeline.chain.component import declared_destinations
        from afas_pipeline.chain.sync import mapping_drift
        from afas_pipeline.resources import build_resources

        problem = _settings_problem()
        if problem:
            return _error(problem)
        resources = build_resources()
        try:
            found = xelion_drift(resources["afas"], load_settings(MAPPINGS_DIR / XELION_SETTINGS, sources=sources),
                                 sources)
        except AfasError as exc:
            return _error(f"drift: {MAPPINGS_DIR / XELION_SETTINGS}: {exc}")
        for problem in found:
            print(f"drift: {problem}", file=sys.stderr)
        problems += len(found)
        if not found:
            print(f"fits AFAS: {MAPPINGS_DIR / XELION_SETTINGS}")
        for declared in declared_destinations():
            destination = declared.destination()
            path = MAPPINGS_DIR / declared.mapping
            try:
                found = mapping_drift(resources["afas"], destination, resources[destination.name], sources)
            except (AfasError, SpotlerError) as exc:
                return _error(f"drift: {path}: {exc}")
            for problem in found:
                print(f"drift: {path}: {problem}", file=sys.stderr)
            problems += len(found)
            if not found:
                print(f"fits AFAS and {destination.name}: {path}")
    return 1 if problems else 0


def _settings_problem() -> str | None:
    """What keeps the configured systems from being used, in one line: a bad setting, or a sandbox that is
    not running; None when there is nothing."""
    from afas_pipeline.resources import ConfigurationError, check_settings

    try:
        check_settings()
    except ConfigurationError as exc:
        return str(exc)
    return _sandbox_unreachable()


def run_sync(cadence: str, partition: str | None, destination: str | None = None) -> int:
    """Run one job in this process against the instance in $DAGSTER_HOME (or a throwaway one)."""
    import warnings

    import dagster as dg

    warnings.filterwarnings("ignore", category=dg.BetaWarning)

    from afas_pipeline.afas.partitions import delta_partitions, full_partitions
    from afas_pipeline.mapping.errors import MappingError
    from afas_pipeline.resources import ConfigurationError

    partitions_def = full_partitions if cadence == "full" else delta_partitions
    key = partition_key(partitions_def, cadence, partition, datetime.now(timezone.utc))
    problem = _settings_problem()
    if problem:
        return _error(problem)
    try:
        from afas_pipeline.definitions import defs
    except (ConfigurationError, MappingError) as exc:
        return _error(exc)

    job = defs.resolve_job_def(f"afas_{cadence}_job")
    # One destination: the AFAS reads and that destination's assets (their keys start with its name).
    selection = None if destination is None else [
        k for k in job.asset_layer.executable_asset_keys
        if k.to_user_string().startswith(("afas_", f"{destination}_"))]
    instance = _instance()
    started = time.monotonic()
    result = job.execute_in_process(
        partition_key=key,
        asset_selection=selection,
        instance=instance,
        raise_on_error=False,
        run_config={"loggers": {"console": {"config": {"log_level": "INFO"}}}},
    )
    print(f"{job.name} partition {key}: {'success' if result.success else 'FAILED'} in {time.monotonic() - started:.1f}s")
    print(f"{'asset':<32} {'rows':>9}")
    for event in result.get_asset_materialization_events():
        mat = event.materialization
        rows = mat.metadata.get("dagster/row_count")
        print(f"{mat.asset_key.to_user_string():<32} {rows.value if rows else '-':>9}")
    for evaluation in result.get_asset_check_evaluations():
        state = "passed" if evaluation.passed else "FAILED"
        print(f"  check {evaluation.asset_key.to_user_string()}:{evaluation.check_name} {state}")
        if not evaluation.passed and evaluation.description:
            print(f"    {one_line(evaluation.description)}")
    if not result.success:
        for line in failure_lines(result):
            print(line, file=sys.stderr)
    return 0 if result.success else 1


def partition_key(partitions_def, cadence: str, given: str | None, now: datetime) -> str:
    """The partition to run: `given`, checked, or the last window that closed. Raises ArgumentProblem
    naming --partition and what to give instead."""
    from afas_pipeline.schedules import last_closed_window

    last_closed = last_closed_window(partitions_def, now)
    if given is None:
        return last_closed
    shown = printable(given)
    example = f"use YYYY-MM-DD-HH:MM in UTC, e.g. {last_closed} (the last closed {cadence} window)"
    try:
        start = datetime.strptime(given, partitions_def.fmt).replace(tzinfo=timezone.utc)
    except ValueError:
        raise ArgumentProblem(f"--partition {shown!r} is not a partition key: {example}") from None
    first = partitions_def.start.astimezone(timezone.utc)
    if start < first:
        raise ArgumentProblem(
            f"--partition {shown} lies before the first {cadence} window, {first.strftime(partitions_def.fmt)}")
    window = partitions_def.time_window_for_partition_key(
        partitions_def.get_partition_key_for_timestamp(start.timestamp()))
    if window.start != start:
        holding = window.start.strftime(partitions_def.fmt)
        raise ArgumentProblem(
            f"--partition {shown} is not the start of a {cadence} window ({partitions_def.cron_schedule} UTC): "
            f"the window holding it is {holding}")
    if window.end > now:
        raise ArgumentProblem(
            f"--partition {shown} has not closed yet: the last closed {cadence} window is {last_closed}")
    return given


def failure_lines(result) -> list[str]:
    """One line per failed step: the step and its cause in the words of the error the step raised (not
    Dagster's wrapper around it), control characters escaped. A run that failed before any step did gets
    one line with the run's own error."""
    lines = []
    for event in result.get_step_failure_events():
        error = event.step_failure_data.error
        lines.append(f"error in {event.step_key}: {_cause(error) if error else 'failed'}")
    if not lines:
        failure = result.get_run_failure_event()
        error = getattr(failure.event_specific_data, "error", None) if failure else None
        lines.append(f"error: the run failed: {_cause(error) if error else failure.message if failure else 'unknown'}")
    return [one_line(line) for line in lines]


def _cause(error) -> str:
    # Dagster wraps what a step raised (DagsterExecutionStepExecutionError, resource init errors...):
    # the cause the operator can act on is the first error under those wrappers.
    while error.cls_name.startswith("Dagster") and error.cause is not None:
        error = error.cause
    message = error.message.strip()
    # SerializableErrorInfo messages start with the qualified class name.
    prefix = re.match(rf"^[\w.]*\b{re.escape(error.cls_name)}: ", message)
    return message[prefix.end():] if prefix else message


def _sandbox_unreachable() -> str | None:
    """A one-line problem when the sandbox is in use but nothing listens at its URL, else None."""
    from afas_pipeline.resources import sandbox_url

    url = sandbox_url()
    if url is None:
        return None
    parts = urlsplit(url)
    try:
        socket.create_connection((parts.hostname, parts.port or 80), timeout=5).close()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        return (f"the sandbox at {shown_url(url)} (AFAS_PIPELINE_SANDBOX_URL) does not answer ({reason}): start it "
                f"with `afas-pipeline sandbox` (or `make sandbox`), point AFAS_PIPELINE_SANDBOX_URL at it, or "
                f"configure production AFAS and Spotler (see the README)")
    return None


def _instance():
    """The Dagster instance in $DAGSTER_HOME (a throwaway one without it).

    On a fresh home, `DagsterInstance.get()` creates and stamps Dagster's SQLite databases; two syncs doing
    that at once can leave the run database with two migration heads. An OS lock in DAGSTER_HOME makes the
    second wait until the first has created them."""
    import dagster as dg
    from filelock import FileLock

    home = os.environ.get("DAGSTER_HOME")
    if not home:
        return dg.DagsterInstance.ephemeral()
    with FileLock(os.path.join(home, INSTANCE_LOCK)):
        instance = dg.DagsterInstance.get()
        # Every storage is created by now; touching them keeps it so if Dagster ever makes one lazy.
        instance.run_storage, instance.event_log_storage, instance.schedule_storage  # noqa: B018
    return instance


def run_up(args: argparse.Namespace) -> int:
    """Everything a newcomer needs to see the lineage graph with data, in one foreground command."""
    home = Path(os.environ.get("DAGSTER_HOME") or PROJECT_ROOT / ".dagster_home").resolve()
    home.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(PROJECT_ROOT / "dagster.yaml", home / "dagster.yaml")
    sandbox_url = _sandbox_server().local_url(args.host, args.port)
    ui_url = f"http://127.0.0.1:{args.ui_port}"
    env = {**os.environ, "DAGSTER_HOME": str(home), "AFAS_PIPELINE_SANDBOX_URL": sandbox_url}

    children: list[subprocess.Popen] = []

    def stop(*_: object) -> None:
        for child in reversed(children):
            if child.poll() is None:
                child.terminate()
        for child in children:
            try:
                child.wait(timeout=15)
            except subprocess.TimeoutExpired:
                child.kill()

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        cli = [sys.executable, "-m", "afas_pipeline.cli"]
        sandbox_args = ["--host", args.host, "--port", str(args.port), "--contacts", str(args.contacts), "--seed", str(args.seed)]
        if args.allow_remote_admin:
            sandbox_args.append("--allow-remote-admin")
        children.append(_spawn([*cli, "sandbox", *sandbox_args], env, PROJECT_ROOT))
        _wait_for(f"{sandbox_url}/afas/_admin/state", children[-1], "the sandbox")

        _place_demo_calls(sandbox_url)
        for cadence in ("full", "delta"):
            print(f"== first {cadence} sync, for the last closed window", flush=True)
            if subprocess.run([*cli, "sync", "--cadence", cadence], env=env, cwd=PROJECT_ROOT).returncode != 0:
                print("the sync failed; the UI still starts so you can inspect the run", file=sys.stderr)

        # Run from DAGSTER_HOME, so Dagster does not warn that the project's dagster.yaml template
        # is not the instance's.
        dagster = [sys.executable, "-m", "dagster"]
        workspace = str(PROJECT_ROOT / "workspace.yaml")
        subprocess.run([*dagster, "schedule", "start", "--start-all", "-w", workspace], env=env, cwd=home,
                       check=False, stdout=subprocess.DEVNULL)
        children.append(_spawn([*dagster, "dev", "-w", workspace, "-h", "127.0.0.1", "-p", str(args.ui_port)], env, home))
        _wait_for(f"{ui_url}/server_info", children[-1], "the Dagster UI", timeout_s=120)
        # The first-visit "join the community" modal would cover the lineage graph.
        httpx.post(f"{ui_url}/graphql", json={"query": "mutation { setNuxSeen }"}, timeout=10)

        print(f"\nDagster UI:      {ui_url}/asset-groups")
        for name in DESTINATIONS:
            print(f"  {name + ':':<14} {ui_url}/locations/afas_pipeline/asset-groups/{name}/lineage")
        print("                 (AFAS -> destination -> AFAS lineage with data from the first runs; schedules are on)")
        print(f"Sandbox:         {sandbox_url}/afas/ProfitRestServices, {sandbox_url}/spotler/integrationservice-1.1.0, "
              f"{sandbox_url}/mailchimp/3.0 and {sandbox_url}/xelion/api/v1/master")
        print("                 (credentials printed above and in the README)")
        print("Stop with Ctrl-C.", flush=True)
        while all(child.poll() is None for child in children):
            time.sleep(1)
        print("a child process exited; stopping", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        stop()


def _place_demo_calls(sandbox_url: str) -> None:
    """A few finished calls in the Xelion sandbox, so the first delta files call reports in AFAS: from the
    first organisations with a phone number (with a note, one with a recording) and from a number AFAS does
    not know (it waits as unmatched)."""
    from afas_pipeline.lib.phones import e164

    organisations = httpx.get(f"{sandbox_url}/afas/_admin/records/organisations", timeout=60).json()
    numbers = [o["Phone"] for o in organisations if o.get("Phone") and e164(o["Phone"])][:3]
    calls = [{"number": numbers[0], "subject": "Offerte besproken", "note": "Wil volgende week een voorstel.",
              "recording": True, "duration_s": 184},
             *({"number": n, "direction": "outgoing", "note": "Afspraak bevestigd.", "duration_s": 65}
               for n in numbers[1:]),
             {"number": "+31 6 48765432", "note": "Onbekende beller, vroeg naar de prijslijst.", "duration_s": 40}]
    for call in calls:
        httpx.post(f"{sandbox_url}/xelion/_admin/calls", json=call, timeout=30).raise_for_status()


def _spawn(cmd: list[str], env: dict[str, str], cwd: Path) -> subprocess.Popen:
    # dagster dev copies SIGINT's disposition onto SIGTERM; a child that inherits an ignored SIGINT
    # could never be stopped, so give every child the default handlers back.
    def reset_signals() -> None:
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)

    return subprocess.Popen(cmd, env=env, cwd=cwd, preexec_fn=reset_signals)


def _wait_for(url: str, child: subprocess.Popen, what: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if child.poll() is not None:
            raise SystemExit(f"{what} exited with code {child.returncode} before it answered at {url}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    raise SystemExit(f"{what} did not answer at {url} within {timeout_s:.0f}s")


if __name__ == "__main__":
    raise SystemExit(main())
