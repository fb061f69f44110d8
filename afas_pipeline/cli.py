"""`afas-pipeline`: the sandbox, a one-shot sync, and the whole stack for a first look.

    afas-pipeline sandbox            serve the emulators (AFAS Profit) on localhost
    afas-pipeline sync               materialise the sync graph once, in this process (--dry-run: the plan only)
    afas-pipeline up                 sandbox + first sync + Dagster UI and daemon, schedules on
    afas-pipeline validate-mappings  check the files under mappings/ (--drift: against the live systems)
    afas-pipeline call-lookup        answer Xelion's incoming-call trigger with the caller's InSite card
    afas-pipeline release            let a quarantined record be tried again
    afas-pipeline erase              erase a person in every destination, audited (GDPR article 17, P2)
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

import httpx
import yaml

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
    parser.add_argument("--version", action="version", version=version_text(),
                        help="print the versions of afas-pipeline and Dagster and exit")
    sub = parser.add_subparsers(dest="command", required=True)

    sandbox = sub.add_parser("sandbox", help="serve the emulators on localhost")
    _sandbox_args(sandbox)

    sync = sub.add_parser("sync", help="materialise the sync graph once, in-process, and print counts per asset")
    sync.add_argument("--cadence", choices=("full", "delta"), default="full", help="which job (default: full)")
    sync.add_argument("--partition", help="partition key, e.g. 2026-11-22-12:00 (default: the last closed window)")
    sync.add_argument("--from", dest="first", metavar="KEY",
                      help="first window of a range: every window from it to --to runs in order, one run each, "
                           "stopping at the first that fails")
    sync.add_argument("--to", dest="last", metavar="KEY",
                      help="last window of the range (default: the last closed window)")
    sync.add_argument("--destination", choices=DESTINATIONS, default=None,
                      help=f"sync to one destination only ({', '.join(DESTINATIONS)}; default: every destination)")
    sync.add_argument("--dry-run", action="store_true",
                      help="read AFAS and plan, then print per destination what the sync would create, update, "
                           "leave, skip, keep quarantined and hold back (C1); nothing is written anywhere")

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
    lookup.add_argument("--index", default=None,
                        help="the phone index file, a path or an s3:// URL (default: xelion_phone_index.parquet in "
                             "$AFAS_PIPELINE_STORAGE, "
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

    erase = sub.add_parser(
        "erase", help="erase a person in every destination (GDPR article 17, rule P2) and audit it",
        description="Queue an erasure request in the sync state ($AFAS_PIPELINE_STATE, else "
                    "$DAGSTER_HOME/state/sync_state.sqlite) and, unless --queue-only, carry it out at once through "
                    "the erasure_job: Spotler anonymizes the contact, Mailchimp deletes the member permanently (its "
                    "address can never be imported again), Xelion's addressable of the person is removed, and the "
                    "sync state of those records is purged. From the moment it is queued no sync sends those records "
                    "again. The audit (asset erasure_audit) keeps the salted hash, times and outcome per destination, "
                    "never an id, address or name. Exit code 0 erased (or queued with --queue-only), 1 still pending "
                    "(a destination failed: the erasure_job retries it), 2 bad input. See docs/operations.md#erasure.")
    erase.add_argument("--afas-id", action="append", default=[], metavar="CONTACT_ID",
                       help="the AFAS ContactId (the record the e-mail destinations hold); its person is looked up in "
                            "AFAS for Xelion. May be given more than once")
    erase.add_argument("--person", action="append", default=[], metavar="PERSON_ID",
                       help="an AFAS PersonId (Xelion's addressable), e.g. when the contact is gone from AFAS")
    erase.add_argument("--email", metavar="ADDRESS",
                       help="the person's e-mail address: hashed at once (never stored or printed) and matched on the "
                            "sync state's address hashes to find the contacts")
    erase.add_argument("--queue-only", action="store_true",
                       help="only queue the request; the erasure_job (every 15 minutes) carries it out")
    erase.add_argument("--lift", metavar="HASH",
                       help="the other way: let the syncs send an erased person again (they asked to be added back): "
                            "the request's hash as erasure_audit shows it. Its audit stays, with status lifted")

    args = parser.parse_args(argv)
    try:
        if args.command == "sandbox":
            return run_sandbox(args)
        if args.command == "sync":
            try:
                return run_sync(cadence=args.cadence, partition=args.partition, destination=args.destination,
                                first=args.first, last=args.last, dry_run=args.dry_run)
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
        if args.command == "erase":
            return run_erase(args)
    except KeyboardInterrupt:
        # Ctrl-C: the work was cut short, which the one who pressed it knows; 130 as a shell reports SIGINT.
        return 130
    return 2


def version_text() -> str:
    """`afas-pipeline 0.1.0 (dagster 1.13.27, Python 3.11.7)`, from the installed packages' metadata."""
    def installed(name: str) -> str:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return "not installed"

    python = ".".join(str(part) for part in sys.version_info[:3])
    return f"afas-pipeline {installed('afas-pipeline')} (dagster {installed('dagster')}, Python {python})"


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
        # uvicorn at warning: its start and stop lines say nothing the banner does not.
        serve(host=args.host, port=args.port, contacts=args.contacts, seed=args.seed, log_level="warning",
              allow_remote_admin=args.allow_remote_admin)
    except SandboxBindError as exc:
        return _error(exc)
    except KeyboardInterrupt:  # Ctrl-C is how it stops: uvicorn has shut down and raises the Ctrl-C it caught
        pass
    return 0


def run_call_lookup(args: argparse.Namespace) -> int:
    """The X2 endpoint in the foreground; Ctrl-C stops it."""
    from afas_pipeline.mapping.errors import MappingError
    from afas_pipeline.xelion import lookup
    from afas_pipeline.lib.storage import StorageError
    from afas_pipeline.xelion.config import default_settings

    try:
        settings = default_settings()
    except MappingError as exc:
        return _error(exc)
    index = args.index or lookup.default_index_path(os.environ, PROJECT_ROOT / ".dagster_home")
    try:
        lookup.serve(host=args.host, port=args.port, index_path=index, settings=settings)
    except (lookup.LookupBindError, StorageError) as exc:
        return _error(exc)
    except KeyboardInterrupt:  # Ctrl-C is how it stops: uvicorn has shut down and raises the Ctrl-C it caught
        pass
    return 0


def run_release(args: argparse.Namespace) -> int:
    """Release one quarantined record (`SyncState.release`) in the sync state the pipeline uses. One line: released
    (exit 0), not quarantined (1) or unknown key (2); only a release changes the state."""
    from afas_pipeline.chain.writer import CONSENT_REASON
    from afas_pipeline.lib.privacy import hash_key
    from afas_pipeline.sync.state import StateError, SyncState, SyncStateResource, is_url

    location = SyncStateResource(path=os.environ.get("AFAS_PIPELINE_STATE") or None).location()
    d, key = args.destination, printable(args.key)
    if not is_url(location) and not location.is_file():
        print(f"unknown key: there is no sync state at {location}; run this where the pipeline runs, with its "
              "AFAS_PIPELINE_STATE or DAGSTER_HOME", file=sys.stderr)
        return 2
    try:
        state = SyncState(location)
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


def run_erase(args: argparse.Namespace) -> int:
    """Queue one erasure request and, unless --queue-only, run the erasure_job for it. One line per outcome, with the
    request's hash only."""
    _quiet_dagster_warnings()
    from afas_pipeline.erasure import erasable_destinations, queue
    from afas_pipeline.lib.privacy import hash_key
    from afas_pipeline.mapping.errors import MappingError
    from afas_pipeline.resources import ConfigurationError, build_resources
    from afas_pipeline.sync.audience import normalise_email
    from afas_pipeline.sync.erasure import request_keys
    from afas_pipeline.sync.state import StateError, SyncStateResource

    if args.lift is not None:
        return _lift(args.lift)
    contacts = [printable(i).strip() for i in args.afas_id if i.strip()]
    persons = [printable(i).strip() for i in args.person if i.strip()]
    email_hash = None
    if args.email is not None:
        address = normalise_email(args.email)
        if not address:
            print("error: --email is empty; give the person's e-mail address", file=sys.stderr)
            return 2
        email_hash = hash_key(address)
    if not (contacts or persons or email_hash):
        print("error: give --afas-id CONTACT_ID, --person PERSON_ID or --email ADDRESS: whom to erase",
              file=sys.stderr)
        return 2
    problem = _settings_problem(("afas", *DESTINATIONS))
    if problem:
        return _error(problem)
    try:
        resources = build_resources()
        destinations = erasable_destinations()
        state = SyncStateResource(path=os.environ.get("AFAS_PIPELINE_STATE") or None).open()
    except (ConfigurationError, MappingError, StateError) as exc:
        return _error(exc)
    if email_hash:
        found = set()
        for d in destinations:
            records = state.records(d.name)
            found |= set(records.loc[records["email_hash"] == email_hash, "external_id"].dropna().astype(str))
        if not found and not (contacts or persons):
            print("not found: no record in the sync state has that address; give --afas-id or --person; nothing "
                  "changed", file=sys.stderr)
            return 2
        contacts += sorted(found)
    persons += _persons_of(resources["afas"], contacts)
    keys = request_keys(contacts, persons)
    subject = email_hash or hash_key(keys["contacts"][0] if keys["contacts"] else f"person:{keys['persons'][0]}")
    if not queue(state, destinations, keys, subject, "cli"):
        print(f"already requested: {subject} (see erasure_audit); nothing queued")
    else:
        print(f"queued: erasure {subject} ({len(keys['contacts'])} contacts, {len(keys['persons'])} persons)")
    if args.queue_only:
        return 0
    from afas_pipeline.definitions import defs

    # Dagster's own lines only when something goes wrong: the outcome is the one line printed below.
    logs = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
    from afas_pipeline.lib.runs import execute

    result = execute(_job(defs, "erasure_job", resources), instance=_instance(), run_config=logs)
    row = state.erasure_requests().set_index("subject_hash").loc[subject]
    outcomes = ", ".join(f"{d} {o}" for d, o in sorted(row["outcome"].items()))
    if row["status"] == "erased":
        print(f"erased: {subject} ({outcomes})")
        return 0
    print(f"pending: {subject} ({outcomes or 'not attempted'}{'' if result.success else '; the erasure_job failed'}); "
          "the erasure_job tries again every 15 minutes", file=sys.stderr)
    return 1


def _lift(subject: str) -> int:
    """Lift the tombstones of one erased request: 0 lifted, 2 no erased request has that hash."""
    from afas_pipeline.sync.state import StateError, SyncStateResource

    subject = printable(subject).strip()
    try:
        state = SyncStateResource(path=os.environ.get("AFAS_PIPELINE_STATE") or None).open()
        lifted = state.lift_tombstones(subject)
    except StateError as exc:
        return _error(exc)
    if not lifted:
        print(f"not lifted: no erased request {subject} (see erasure_audit: a pending one is erased first); nothing "
              "changed", file=sys.stderr)
        return 2
    print(f"lifted: {subject}; the next sync sends its records again if AFAS holds them (a Mailchimp address "
          "deleted permanently stays refused: only the person can subscribe again)")
    return 0


def _persons_of(afas, contacts: list[str]) -> list[str]:
    """The AFAS persons of these contacts (for Xelion); none when AFAS cannot be read (then say so)."""
    from afas_pipeline.afas.lookups import read_by_keys
    from afas_pipeline.afas.sources import default_sources

    if not contacts:
        return []
    try:
        rows, _ = read_by_keys(afas, default_sources().contacts, contacts)
    except Exception as exc:  # AFAS unreachable: the e-mail destinations can still be erased
        print(f"warning: AFAS not read ({type(exc).__name__}): the contacts' persons (Xelion) are not known; "
              "give --person PERSON_ID to erase them there too", file=sys.stderr)
        return []
    return sorted(set(rows["PersonId"].dropna().astype(str))) if "PersonId" in rows else []


def validate_mappings(drift: bool = False) -> int:
    """Load every mapping file (rules R5, R8, R9, R13 and the file format); with `drift`, also compare
    them with the systems. Prints one line per problem; exit code 1 when there is any."""
    from afas_pipeline.afas.errors import AfasError
    from afas_pipeline.afas.sources import MAPPINGS_DIR, MappingError, load_sources
    from afas_pipeline.mapping.load import load_mapping, mappings_folder_problems
    from afas_pipeline.resources import DESTINATIONS
    from afas_pipeline.lib.errors import ServiceError
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

        problem = _settings_problem(("afas", *DESTINATIONS))
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
            except (AfasError, ServiceError) as exc:  # a destination that stopped answering, or refused
                return _error(f"drift: {path}: {exc}")
            for problem in found:
                print(f"drift: {path}: {problem}", file=sys.stderr)
            problems += len(found)
            if not found:
                print(f"fits AFAS and {destination.name}: {path}")
    return 1 if problems else 0


def _settings_problem(systems: Iterable[str]) -> str | None:
    """What keeps `systems` (`afas` and destination names) from being used, one line per problem: a bad setting,
    or a system that does not answer; None when there is nothing."""
    from afas_pipeline.resources import ConfigurationError, check_settings

    try:
        check_settings()
    except ConfigurationError as exc:
        return str(exc)
    return "\n".join(unreachable(systems)) or None


#: How long a system may take to answer before a command says it does not.
PROBE_TIMEOUT_S = 5.0


def unreachable(systems: Iterable[str], env: Mapping[str, str] = os.environ) -> list[str]:
    """One line per system of `systems` (`afas`, destination names) that gives no HTTP answer at its base URL (a
    refused connection, a host name that does not resolve, a timeout), naming the URL and its setting; the sandbox
    is asked once for every system it plays, and its line says how to start it. Any answer, even a 401, counts."""
    from afas_pipeline.resources import endpoints

    found = endpoints(env)
    asked: dict = {}
    for name in systems:
        asked.setdefault(found[name], []).append(name)
    with ThreadPoolExecutor(max_workers=max(len(asked), 1), thread_name_prefix="probe") as pool:
        reasons = list(pool.map(lambda endpoint: _no_answer(endpoint.url), asked))
    return [_unreachable_line(endpoint, names, reason) for (endpoint, names), reason in zip(asked.items(), reasons)
            if reason]


def _no_answer(url: str) -> str | None:
    """Why `url` gives no HTTP answer, in a few words; None when it answers."""
    try:
        httpx.get(url, timeout=PROBE_TIMEOUT_S)
    except httpx.TimeoutException:
        return f"no answer within {PROBE_TIMEOUT_S:g}s"
    except httpx.TransportError as exc:
        reason = re.sub(r"^\[Errno -?\d+\] ", "", str(exc)) or type(exc).__name__
        causes = [exc.__cause__, exc.__context__, getattr(exc.__context__, "__context__", None)]
        if any(isinstance(cause, socket.gaierror) for cause in causes):
            return f"its host name does not resolve; DNS: {reason}"
        return reason
    return None


def _unreachable_line(endpoint, names: list[str], reason: str) -> str:
    url = shown_url(endpoint.url)
    if endpoint.sandbox:
        return (f"the sandbox at {url} (AFAS_PIPELINE_SANDBOX_URL) does not answer ({printable(reason)}): start it "
                f"with `afas-pipeline sandbox` (or `make sandbox`), point AFAS_PIPELINE_SANDBOX_URL at it, or "
                f"configure production {_and(_title(n) for n in names)} (see the README)")
    setting = endpoint.setting if endpoint.setting != "MAILCHIMP_API_KEY" else "the data centre of MAILCHIMP_API_KEY"
    return (f"{_title(names[0])} at {url} ({setting}) does not answer ({printable(reason)}): check {setting} and "
            f"that this machine reaches it (network, proxy, firewall)")


def _and(words: Iterable[str]) -> str:
    *others, last = words
    return f"{', '.join(others)} and {last}" if others else last


def _title(system: str) -> str:
    return "AFAS" if system == "afas" else system.capitalize()


def cadence_partitions(cadence: str):
    """The partitions of a cadence (`full`, `delta`), read where they are defined each time they are needed: the
    delta's first window moves with the clock and the environment."""
    from afas_pipeline.afas import partitions

    return partitions.full_partitions if cadence == "full" else partitions.delta_partitions


def run_sync(cadence: str, partition: str | None = None, destination: str | None = None, *,
             first: str | None = None, last: str | None = None, dry_run: bool = False) -> int:
    """Run one job in this process against the instance in $DAGSTER_HOME (or a throwaway one): for one window, or
    for every window from `first` to `last` in order, stopping at the first that fails. `dry_run`: the plan of one
    window, nothing written."""
    _quiet_dagster_warnings()
    from afas_pipeline.lib.settings import SettingError
    from afas_pipeline.mapping.errors import MappingError
    from afas_pipeline.resources import ConfigurationError, build_resources

    try:
        partitions_def = cadence_partitions(cadence)
    except SettingError as exc:  # a partition horizon or start that cannot work
        return _error(exc)
    keys = window_keys(partitions_def, cadence, partition, first, last, datetime.now(timezone.utc))
    if dry_run and len(keys) > 1:
        raise ArgumentProblem("--dry-run plans one window: give --partition (or nothing for the last closed one), "
                              "not --from/--to")
    systems = ("afas", *(DESTINATIONS if destination is None else (destination,)))
    problem = _settings_problem(systems)
    if problem:
        return _error(problem)
    try:
        from afas_pipeline.definitions import defs

        resources = build_resources()
    except (ConfigurationError, MappingError) as exc:
        return _error(exc)

    job = _job(defs, f"afas_{cadence}_job", resources)
    if dry_run:
        return _dry_run(defs, job.name, keys[0], systems[1:], resources)
    # One destination: the AFAS reads and that destination's assets (their keys start with its name).
    selection = None if destination is None else [
        k for k in job.asset_layer.executable_asset_keys
        if k.to_user_string().startswith(("afas_", f"{destination}_"))]
    instance = _instance()
    for number, key in enumerate(keys, start=1):
        title = f"{job.name} {key}" + (f" (window {number} of {len(keys)})" if len(keys) > 1 else "")
        started = time.monotonic()
        try:
            result = _execute(job, key, selection, instance, title=title)
        except KeyboardInterrupt:  # came between Dagster's steps, where it does not turn it into a failure
            result = None
        if result is not None:
            _print_result(f"{job.name} partition {key}", result, time.monotonic() - started)
        if result is None or interrupted(result):
            print(f"interrupted: window {key} stopped where it was (Ctrl-C)", file=sys.stderr)
            return 130
        if not result.success:
            _print_failure(result, systems)
            if len(keys) > 1:
                print(f"error: window {key} failed (window {number} of {len(keys)}); the windows before it "
                      f"succeeded: once fixed, go on with --from {key} --to {keys[-1]}", file=sys.stderr)
            return 1
    return 0


def _quiet_dagster_warnings() -> None:
    # The code location knowingly uses beta and preview APIs (backfill policies, code references).
    import warnings

    import dagster as dg

    for category in (dg.BetaWarning, dg.PreviewWarning):
        warnings.filterwarnings("ignore", category=category)


def _job(defs, name: str, resources: dict):
    """The job `name` of the code location, with `resources` (as the settings are now, and a dry run's scratch
    state and storage) in place of those built when the code location was loaded."""
    import dagster as dg

    return dg.Definitions(assets=defs.assets, asset_checks=defs.asset_checks, jobs=defs.jobs, executor=defs.executor,
                          loggers=defs.loggers, resources={**defs.resources, **resources}).resolve_job_def(name)


def _execute(job, key: str, selection, instance, *, title: str, ops: dict | None = None):
    """One run of `job` for window `key`, in this process; on a terminal, its progress per asset."""
    from afas_pipeline.lib.progress import run_progress
    from afas_pipeline.lib.runs import execute

    chosen = set(selection or job.asset_layer.executable_asset_keys)
    assets = [k for k in job.asset_layer.asset_graph.toposorted_asset_keys if k in chosen]
    step_assets: dict[str, list[str]] = {}
    for asset in assets:  # the step that materialises each asset: one step may hold several (`afas_snapshots`)
        step_assets.setdefault(str(job.asset_layer.get_op_output_handle(asset).node_handle), []).append(
            asset.to_user_string())
    progress = run_progress([k.to_user_string() for k in assets], title, step_assets=step_assets)
    run_id = str(uuid.uuid4())
    # On a terminal the progress lines stand for Dagster's log lines; elsewhere (cron, CI) they are the record.
    logs = {"console": {"config": {"log_level": "CRITICAL" if progress else "INFO"}}}
    with progress or contextlib.nullcontext():
        if progress:
            instance.add_event_listener(run_id, progress.on_event)
        return execute(
            job,
            partition_key=key,
            asset_selection=selection,
            instance=instance,
            raise_on_error=False,
            run_id=run_id,
            run_config={"loggers": logs, **({"ops": ops} if ops else {})},
        )


def _print_result(title: str, result, elapsed_s: float) -> None:
    """The run's outcome, its rows per asset and its checks, as plain lines on stdout."""
    print(f"{title}: {'success' if result.success else 'FAILED'} in {elapsed_s:.1f}s")
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


def _print_failure(result, systems: Iterable[str]) -> None:
    """One line per failed step on stderr, then one per system that stopped answering meanwhile."""
    for line in failure_lines(result):
        print(line, file=sys.stderr)
    for line in unreachable(systems):
        print(f"error: {line}", file=sys.stderr)


# --- dry run ------------------------------------------------------------------------------------------------

#: The columns of a dry run's plan, per destination.
PLAN_COLUMNS = ("create", "update", "unchanged", "skip", "quarantined", "held by C1")


def _dry_run(defs, job_name: str, key: str, destinations: Iterable[str], resources: dict) -> int:
    """The reads and plans of one window, run against a copy of the sync state, with scratch storage and a
    throwaway Dagster instance: the plan is printed, and nothing is written to a destination, AFAS, the sync state,
    the asset storage or the instance's run history. (The plan step itself writes the state: it records the
    opt-outs it reads from the destination's change feed.)"""
    import dagster as dg

    from afas_pipeline.lib.parquet_io import ParquetIOManager
    from afas_pipeline.sync.state import SyncStateResource

    with tempfile.TemporaryDirectory(prefix="afas-pipeline-dry-run-") as scratch:
        state = copy_state(resources["sync_state"].location(), Path(scratch) / "sync_state.sqlite")
        job = _job(defs, job_name, {**resources, "sync_state": SyncStateResource(path=str(state)),
                                    "io_manager": ParquetIOManager(base_dir=str(Path(scratch) / "storage"))})
        targets, ops = dry_run_targets(job, destinations)
        selection = sorted(dg.AssetSelection.assets(*(k for keys in targets.values() for k in keys)).upstream()
                           .resolve(job.asset_layer.asset_graph))
        started = time.monotonic()
        result = _execute(job, key, selection, dg.DagsterInstance.ephemeral(), title=f"dry run {job_name} {key}",
                          ops=ops)
        elapsed = time.monotonic() - started
    _print_result(f"dry run of {job_name} partition {key} (nothing written)", result, elapsed)
    metadata = {e.materialization.asset_key: e.materialization.metadata
                for e in result.get_asset_materialization_events()}
    print(f"{'plan':<12}" + "".join(f" {column:>11}" for column in PLAN_COLUMNS))
    for destination, keys in targets.items():
        counts = [plan_counts(metadata[k]) for k in keys if k in metadata]
        cells = [_sum(column) for column in zip(*counts)] if counts else ["not planned"] + [""] * 5
        print(f"{destination:<12}" + "".join(f" {'-' if c is None else c:>11}" for c in cells))
    if not result.success:
        _print_failure(result, ("afas", *targets))
    return 0 if result.success else 1


def _sum(values) -> int | None:
    return None if any(v is None for v in values) else sum(values)


def dry_run_targets(job, destinations: Iterable[str]) -> tuple[dict[str, list], dict[str, dict]]:
    """Per destination the assets a dry run stops at, and the op config that keeps them from writing. A
    destination's plan (`<d>_sync_plan`, `<d>_sync_plan_delta`) writes nothing to it; a destination whose one step
    plans and writes (Xelion's address book) runs that step with `dry_run: true`."""
    graph = job.asset_layer.asset_graph
    names = {k.to_user_string(): k for k in job.asset_layer.executable_asset_keys}
    targets, ops = {}, {}
    for destination in destinations:
        plans = [key for name, key in names.items() if name.startswith(f"{destination}_sync_plan")]
        if not plans:
            for name, key in names.items():
                op = graph.get(key).assets_def.op
                fields = getattr(op.config_schema.as_field().config_type, "fields", {}) if op.config_schema else {}
                if name.startswith(f"{destination}_") and "dry_run" in fields:
                    plans.append(key)
                    ops[op.name] = {"config": {"dry_run": True}}
        targets[destination] = plans
    return targets, ops


def plan_counts(metadata: Mapping[str, object]) -> tuple[int | None, ...]:
    """A planning asset's metadata as the dry run's columns (PLAN_COLUMNS); None where the destination has no such
    thing (Xelion skips nothing and has no consent to hold back)."""
    def count(name: str) -> int:
        value = metadata.get(name)
        return int(getattr(value, "value", value) or 0)

    if "plan/create" in metadata:
        return (count("plan/create"), count("plan/update"), count("plan/unchanged"),
                count("plan/skip_hard_bounce") + count("plan/skip_shared_address"), count("plan/quarantined"),
                count("plan/held_by_consent"))
    # A step that plans and writes, run with dry_run: its outcomes, as planned.
    return (count("outcome/create/planned"), count("outcome/update/planned"), count("outcome/unchanged/unchanged"),
            None, count("outcome/skip/quarantined"), None)


def copy_state(location: str | Path, copy: Path) -> Path:
    """A consistent copy of the sync state at `location` (a SQLite file: SQLite's online backup, so a run writing
    it meanwhile is no harm; a Postgres database: its rows, read in one read-only transaction) in the SQLite file
    `copy`; none when there is no state yet. The original is only read."""
    from afas_pipeline.sync.state import SyncState, copy_rows, is_url

    if is_url(location):
        copy_rows(SyncState(location, read_only=True), SyncState(copy))
    elif Path(location).exists():
        # Not `mode=ro`: a read-only connection to a WAL database leaves its -wal and -shm files behind.
        with contextlib.closing(sqlite3.connect(location)) as source, \
                contextlib.closing(sqlite3.connect(copy)) as target:
            source.execute("PRAGMA query_only = ON")
            source.backup(target)
    return copy


# --- windows ------------------------------------------------------------------------------------------------


def window_keys(partitions_def, cadence: str, partition: str | None, first: str | None, last: str | None,
                now: datetime) -> list[str]:
    """The windows to run, in order: `partition` (default the last closed one), or every window from `first` to
    `last` (default the last closed one). Raises ArgumentProblem naming the argument."""
    import dagster as dg

    if partition is not None and (first or last):
        raise ArgumentProblem("give one window (--partition) or a range (--from, --to), not both")
    if first is None:
        if last is not None:
            raise ArgumentProblem(f"--to {printable(last)} needs --from: the first window of the range")
        return [partition_key(partitions_def, cadence, partition, now)]
    start = partition_key(partitions_def, cadence, first, now, argument="--from")
    end = partition_key(partitions_def, cadence, last, now, argument="--to")
    if datetime.strptime(start, partitions_def.fmt) > datetime.strptime(end, partitions_def.fmt):
        raise ArgumentProblem(f"--from {start} is after --to {end}: give the earlier window first")
    return partitions_def.get_partition_keys_in_range(dg.PartitionKeyRange(start, end))


def partition_key(partitions_def, cadence: str, given: str | None, now: datetime, argument: str = "--partition") -> str:
    """The partition to run: `given`, checked, or the last window that closed. Raises ArgumentProblem
    naming `argument` and what to give instead."""
    from afas_pipeline.schedules import last_closed_window

    last_closed = last_closed_window(partitions_def, now)
    if given is None:
        return last_closed
    shown = printable(given)
    example = f"use YYYY-MM-DD-HH:MM in UTC, e.g. {last_closed} (the last closed {cadence} window)"
    try:
        start = datetime.strptime(given, partitions_def.fmt).replace(tzinfo=timezone.utc)
    except ValueError:
        raise ArgumentProblem(f"{argument} {shown!r} is not a partition key: {example}") from None
    first_key = partitions_def.get_first_partition_key()
    if first_key is None or start < datetime.strptime(first_key, partitions_def.fmt).replace(tzinfo=timezone.utc):
        # The settings that decide where the windows start; older deltas are the full sync's job.
        why = ("AFAS_PIPELINE_START, AFAS_PIPELINE_DELTA_HORIZON_DAYS; older windows are the full sync's"
               if cadence == "delta" else "AFAS_PIPELINE_START, AFAS_PIPELINE_FULL_HORIZON_DAYS")
        raise ArgumentProblem(f"{argument} {shown} lies before the first {cadence} window, {first_key} ({why})")
    window = partitions_def.time_window_for_partition_key(
        partitions_def.get_partition_key_for_timestamp(start.timestamp()))
    if window.start != start:
        holding = window.start.strftime(partitions_def.fmt)
        raise ArgumentProblem(
            f"{argument} {shown} is not the start of a {cadence} window ({partitions_def.cron_schedule} UTC): "
            f"the window holding it is {holding}")
    if window.end > now:
        raise ArgumentProblem(
            f"{argument} {shown} has not closed yet: the last closed {cadence} window is {last_closed}")
    return given


def interrupted(result) -> bool:
    """Whether the run stopped because this process was interrupted (Ctrl-C): Dagster fails the step it was in
    with its own error instead of letting the KeyboardInterrupt through."""
    def chain(error):
        while error is not None:
            yield error.cls_name
            error = error.cause

    if result.success:
        return False
    errors = [*(event.step_failure_data.error for event in result.get_step_failure_events()),
              *(getattr(event.event_specific_data, "error", None) for event in result.all_events
                if event.is_run_failure)]
    return any("DagsterExecutionInterruptedError" in chain(error) for error in errors)


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


def free_port(host: str) -> int:
    """A port nothing listens on at `host` now: `up --port 0` needs the number before the sandbox starts, to hand
    its URL to the syncs and the UI."""
    with socket.create_server((host, 0)) as probe:
        return probe.getsockname()[1]


def run_up(args: argparse.Namespace) -> int:
    """Everything a newcomer needs to see the lineage graph with data, in one foreground command."""
    home = Path(os.environ.get("DAGSTER_HOME") or PROJECT_ROOT / ".dagster_home").resolve()
    home.mkdir(parents=True, exist_ok=True)
    (home / "dagster.yaml").write_text(instance_yaml((PROJECT_ROOT / "dagster.yaml").read_text()))
    args.port = args.port or free_port(args.host)
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
        workspace = PROJECT_ROOT / "workspace.yaml"
        subprocess.run([sys.executable, "-m", "dagster", "schedule", "start", "--start-all", "-w", str(workspace)],
                       env=env, cwd=home, check=False, stdout=subprocess.DEVNULL)
        print("== the Dagster UI and daemon are starting", flush=True)
        children.append(_spawn(dagster_dev_command(workspace, args.ui_port), env, home, relay=True))
        relay = OutputRelay(children[-1].stdout, sys.stdout.buffer)
        _wait_for(f"{ui_url}/server_info", children[-1], "the Dagster UI", timeout_s=120)
        # The first-visit "join the community" modal would cover the lineage graph.
        httpx.post(f"{ui_url}/graphql", json={"query": "mutation { setNuxSeen }"}, timeout=10)
        _wait_until_settled(ui_url, relay, children[-1])

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


def instance_yaml(project_yaml: str) -> str:
    """The instance's dagster.yaml (in DAGSTER_HOME) made from the project's: the same, with the runs' console log
    at INFO unless the project's says otherwise. Dagster's default is DEBUG, every event of every run: some 400
    lines per 15-minute run on the terminal of `afas-pipeline up`."""
    config = yaml.safe_load(project_yaml) or {}
    logs = config.get("python_logs") or {}
    if "python_log_level" in logs:
        return project_yaml
    config["python_logs"] = {**logs, "python_log_level": "INFO"}
    return ("# Written by `afas-pipeline up` from the project's dagster.yaml, with python_logs.python_log_level: INFO.\n"
            + yaml.safe_dump(config, sort_keys=False))


def dagster_dev_command(workspace: Path, ui_port: int) -> list[str]:
    """`dagster dev` for `up`: the UI on this machine only, Dagster's own services logging at INFO."""
    return [sys.executable, "-m", "dagster", "dev", "-w", str(workspace), "-h", "127.0.0.1", "-p", str(ui_port),
            "--log-level", "info", "--code-server-log-level", "warning"]


#: The first line of a Python warning (`<file>:<line>: BetaWarning: ...`), bare or inside a Dagster log line.
_NOISY_WARNING = re.compile(r"\S:\d+: (?:\w+\.)*(?:BetaWarning|PreviewWarning|SupersessionWarning): ")
#: The daemon's INFO lines for a sensor tick that found nothing to do: the freshness sensor alone prints one per
#: 15-minute asset each minute, which would bury the UI's URL within a minute. Its alerts and errors still show.
_ROUTINE_TICK = re.compile(r"INFO(?:\x1b\[0m)? - .*(?:Checking for new runs for sensor: |Sensor \S+ skipped: |"
                           r"previously passed, but cannot be overdue again)")


class WarningFilter:
    """Drops the blocks Python prints for Dagster's BetaWarning, PreviewWarning and SupersessionWarning (the warning
    line, the source line under it, a blank line after it): every process that loads the code location prints
    dozens of them, for beta APIs the project uses knowingly (and `dagster dev` for itself, superseded by `dg dev`).
    Drops the daemon's lines for sensor ticks that did nothing, too."""

    def __init__(self) -> None:
        self._in_block = False

    def keep(self, line: str) -> bool:
        if _ROUTINE_TICK.search(line):
            return False
        if _NOISY_WARNING.search(line):
            self._in_block = True
            return False
        if self._in_block and (not line.strip() or line[:1].isspace()):
            return False
        self._in_block = False
        return True


class OutputRelay:
    """Copies a child's output to `out` line by line in a thread, without the warning blocks, and notes when the
    last line came."""

    def __init__(self, stream, out) -> None:
        self.last_line_at = time.monotonic()
        self._filter = WarningFilter()
        self._thread = threading.Thread(target=self._copy, args=(stream, out), name="dagster-output", daemon=True)
        self._thread.start()

    def _copy(self, stream, out) -> None:
        for raw in iter(stream.readline, b""):
            self.last_line_at = time.monotonic()
            if self._filter.keep(raw.decode("utf-8", errors="replace")):
                out.write(raw)
                out.flush()

    def quiet_for(self) -> float:
        return time.monotonic() - self.last_line_at

    def join(self, timeout_s: float) -> None:
        """Wait until the child's output has ended and all of it is copied."""
        self._thread.join(timeout_s)


#: The runs still to come or in progress: a schedule tick that falls while `up` starts launches one.
_SETTLED_QUERY = """{ workspaceOrError { ... on Workspace { locationEntries { loadStatus } } }
  runsOrError(filter: {statuses: [QUEUED, NOT_STARTED, STARTING, STARTED, CANCELING]}) { ... on Runs { results { runId } } } }"""


def _wait_until_settled(ui_url: str, relay: OutputRelay, child: subprocess.Popen, quiet_s: float = 3.0,
                        timeout_s: float = 180) -> None:
    """Until the code location is loaded, no run is queued or running and Dagster has printed nothing for
    `quiet_s`, so that what `up` prints next is the last thing on the screen; at most `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if child.poll() is not None:
            raise SystemExit(f"error: the Dagster UI exited with code {child.returncode} while starting")
        if relay.quiet_for() >= quiet_s:
            try:
                data = httpx.post(f"{ui_url}/graphql", json={"query": _SETTLED_QUERY}, timeout=10).json()["data"]
            except (httpx.TransportError, ValueError, KeyError, TypeError):
                data = None
            if data and all(e["loadStatus"] == "LOADED" for e in data["workspaceOrError"]["locationEntries"]) \
                    and not data["runsOrError"]["results"]:
                return
        time.sleep(0.5)


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


def _spawn(cmd: list[str], env: dict[str, str], cwd: Path, relay: bool = False) -> subprocess.Popen:
    """A child of `up`; with `relay`, its output (stdout and stderr) comes through a pipe for an OutputRelay."""
    # dagster dev copies SIGINT's disposition onto SIGTERM; a child that inherits an ignored SIGINT
    # could never be stopped, so give every child the default handlers back.
    def reset_signals() -> None:
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)

    output = {"stdout": subprocess.PIPE, "stderr": subprocess.STDOUT} if relay else {}
    return subprocess.Popen(cmd, env=env, cwd=cwd, preexec_fn=reset_signals, **output)


def _wait_for(url: str, child: subprocess.Popen, what: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if child.poll() is not None:
            raise SystemExit(f"error: {what} exited with code {child.returncode} before it answered at {url}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    raise SystemExit(f"error: {what} did not answer at {url} within {timeout_s:.0f}s")


if __name__ == "__main__":
    raise SystemExit(main())
