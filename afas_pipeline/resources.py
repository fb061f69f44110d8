"""Every resource, chosen in one place: the sandbox by default, production when AFAS is configured.

Production AFAS is selected by setting `AFAS_TOKEN` together with `AFAS_ENVIRONMENT_ID` (and optionally
`AFAS_ENVIRONMENT=test|accept`) or an explicit `AFAS_BASE_URL`; production Spotler by setting
`SPOTLER_CONSUMER_KEY` and `SPOTLER_CONSUMER_SECRET` (and optionally `SPOTLER_BASE_URL`); production Mailchimp
by setting `MAILCHIMP_API_KEY` and `MAILCHIMP_LIST_ID` (and optionally `MAILCHIMP_BASE_URL`); production Xelion by
setting `XELION_BASE_URL`, `XELION_USER_NAME` and `XELION_PASSWORD` (and optionally `XELION_USER_SPACE`, default
`afas-pipeline`, and `XELION_APP_KEY`), its client being the resource `xelion`. Each destination's
client is the resource of the destination's name (`afas_pipeline/defs/<name>/`). Secrets are
only ever read through `dg.EnvVar`, so they never land in the run config that the Dagster UI shows.

The settings are checked here, once, before any resource is built: a setting that cannot work stops the
code location from loading (and `afas-pipeline` from starting) with one line per problem, naming the
setting, what is wrong and how to fix it. No line ever holds a token or a secret, not even a wrong one.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import NamedTuple

import dagster as dg

from afas_pipeline.afas.client import AFAS_URL_EXAMPLE, AfasClient
from afas_pipeline.alerts.targets import ALERT_SETTINGS, alert_problems, alerts_resource
from afas_pipeline.defs import DESTINATIONS
from afas_pipeline.lib.parquet_io import ParquetIOManager
from afas_pipeline.lib.storage import StorageError, open_storage
from afas_pipeline.lib.text import printable
from afas_pipeline.lib.urls import base_url_problem
from afas_pipeline.mapping.load import mappings_folder_problems
from afas_pipeline.spotler.client import DEFAULT_BASE_URL as SPOTLER_URL_EXAMPLE
from afas_pipeline.spotler.client import SpotlerClient
from afas_pipeline.mailchimp.client import API_URL_EXAMPLE as MAILCHIMP_URL_EXAMPLE
from afas_pipeline.mailchimp.client import MailchimpClient, api_root_for_key
from afas_pipeline.sync.state import SyncStateResource, is_url, state_url_problem
from afas_pipeline.xelion.client import API_URL_EXAMPLE as XELION_URL_EXAMPLE
from afas_pipeline.xelion.client import DEFAULT_USER_SPACE as XELION_DEFAULT_USER_SPACE
from afas_pipeline.xelion.client import XelionClient

#: Every environment variable the pipeline reads (README, "Configuration").
SETTINGS = (
    "AFAS_TOKEN", "AFAS_ENVIRONMENT_ID", "AFAS_ENVIRONMENT", "AFAS_BASE_URL", "AFAS_INTEGRATION_ID",
    "SPOTLER_CONSUMER_KEY", "SPOTLER_CONSUMER_SECRET", "SPOTLER_BASE_URL", "MAILCHIMP_API_KEY", "MAILCHIMP_LIST_ID",
    "MAILCHIMP_BASE_URL", "XELION_BASE_URL", "XELION_USER_NAME", "XELION_PASSWORD", "XELION_USER_SPACE",
    "XELION_APP_KEY", "AFAS_PIPELINE_STATE",
    "AFAS_PIPELINE_STORAGE", "AFAS_PIPELINE_MAPPINGS", "AFAS_PIPELINE_HASH_SALT", "AFAS_PIPELINE_SANDBOX_URL",
    "DAGSTER_HOME", "AFAS_PIPELINE_DOCS_URL",
    # Checked where they are read, when the code location loads (afas/partitions.py, retries.py).
    "AFAS_PIPELINE_START", "AFAS_PIPELINE_DELTA_HORIZON_DAYS", "AFAS_PIPELINE_FULL_HORIZON_DAYS",
    "AFAS_PIPELINE_STEP_RETRIES", "AFAS_PIPELINE_STEP_RETRY_DELAY_S",
    "AFAS_PIPELINE_PERSONAL_DATA", "AFAS_PIPELINE_RETENTION_DAYS", "AFAS_PIPELINE_LEDGER_RETENTION_DAYS", "AFAS_PIPELINE_RUN_RETENTION_DAYS",
    # S3 asset storage (AFAS_PIPELINE_STORAGE=s3://..., afas_pipeline/lib/storage.py); the AWS SDK reads the keys itself.
    "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION",
    "AWS_DEFAULT_REGION", "AWS_MAX_ATTEMPTS", "AWS_EC2_METADATA_DISABLED",
    "AFAS_PIPELINE_ERASURE_DEADLINE_HOURS", "AFAS_PIPELINE_ERASE_REMOVED",
    *ALERT_SETTINGS,
)
#: Where `afas-pipeline sandbox` listens unless told otherwise.
DEFAULT_SANDBOX_URL = "http://127.0.0.1:8765"
#: The sandbox's documented credentials (README, `afas-pipeline sandbox`): constants, not secrets. Kept here as
#: data, so the pipeline never imports the sandbox package (`afas_sandbox`, an extra production can leave out).
SANDBOX_AFAS_TOKEN = "3F4C8A34E5A41B1BD3996776431E1EB94C5CF79EE3985EA2085301168734E371"
SANDBOX_SPOTLER_KEY = "afaspipeline-sandbox"
SANDBOX_SPOTLER_SECRET = "sandbox-secret-7d1e0c5b9a3f4e21"
SANDBOX_MAILCHIMP_KEY = "3409dd0b1dab00826e94dc27237299c3-us21"
SANDBOX_MAILCHIMP_LIST = "f3768f3c95"
SANDBOX_XELION_USER = "afas-pipeline"
SANDBOX_XELION_PASSWORD = "sandbox-xelion-3c9e51d2"
#: The three settings that select production Xelion: all of them, or none (the sandbox).
XELION_PARTNERS = ("XELION_BASE_URL", "XELION_USER_NAME", "XELION_PASSWORD")

AFAS_ENVIRONMENTS = ("production", "test", "accept")

_HEX64 = re.compile(r"[0-9A-Fa-f]{64}")
_XML_TOKEN = re.compile(r"<token>.*<data>\s*[0-9A-Fa-f]{64}\s*</data>.*</token>", re.DOTALL)
_DIGITS = re.compile(r"[0-9]+")
_MAILCHIMP_KEY = re.compile(r"[0-9a-f]{32}-[a-z]{2,}[0-9]+")
_CONTROL_OR_SPACE = re.compile(r"[\x00-\x20\x7f-\x9f]")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


class ConfigurationError(RuntimeError):
    """Settings that cannot work: one line per problem, each naming the setting, what is wrong and the fix."""

    def __init__(self, problems: list[str] | str) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("\n".join(self.problems))


def afas_mode(env: Mapping[str, str] = os.environ) -> str:
    """`production` when AFAS credentials are configured, else `sandbox`."""
    problems = list(_afas_problems(env))
    if problems:
        raise ConfigurationError(problems)
    return "production" if _wants_production_afas(env) else "sandbox"


def spotler_mode(env: Mapping[str, str] = os.environ) -> str:
    """`production` when Spotler credentials are configured, else `sandbox`."""
    problems = list(_spotler_problems(env))
    if problems:
        raise ConfigurationError(problems)
    return "production" if _set(env, "SPOTLER_CONSUMER_KEY") else "sandbox"


def mailchimp_mode(env: Mapping[str, str] = os.environ) -> str:
    """`production` when a Mailchimp API key is configured, else `sandbox`."""
    problems = list(_mailchimp_problems(env))
    if problems:
        raise ConfigurationError(problems)
    return "production" if _set(env, "MAILCHIMP_API_KEY") else "sandbox"


def xelion_mode(env: Mapping[str, str] = os.environ) -> str:
    """`production` when Xelion's base URL, user name and password are configured, else `sandbox`."""
    problems = list(_xelion_problems(env))
    if problems:
        raise ConfigurationError(problems)
    return "production" if _set(env, "XELION_BASE_URL") else "sandbox"


def sandbox_url(env: Mapping[str, str] = os.environ) -> str | None:
    """The sandbox's URL when AFAS, Spotler, Mailchimp or Xelion is the sandbox, else None."""
    if "sandbox" in (afas_mode(env), spotler_mode(env), mailchimp_mode(env), xelion_mode(env)):
        return (env.get("AFAS_PIPELINE_SANDBOX_URL") or DEFAULT_SANDBOX_URL).rstrip("/")
    return None


def check_settings(env: Mapping[str, str] = os.environ) -> None:
    """Raise ConfigurationError listing every setting that cannot work (one line each); return if none."""
    problems = [
        *_afas_problems(env),
        *_spotler_problems(env),
        *_mailchimp_problems(env),
        *_xelion_problems(env),
        *_sandbox_problems(env),
        *_folder_problems(env),
        *_salt_problems(env),
        *_personal_data_problems(env),
        *alert_problems(env),
    ]
    if problems:
        raise ConfigurationError(problems)


def afas_client(env: Mapping[str, str] = os.environ) -> AfasClient:
    if afas_mode(env) == "sandbox":
        return AfasClient(base_url=f"{_sandbox_url(env)}/afas/ProfitRestServices", token=SANDBOX_AFAS_TOKEN)
    return AfasClient(
        environment_id=env.get("AFAS_ENVIRONMENT_ID") or None,
        environment=env.get("AFAS_ENVIRONMENT") or "production",
        base_url=env.get("AFAS_BASE_URL") or None,
        token=dg.EnvVar("AFAS_TOKEN"),
        integration_id=dg.EnvVar("AFAS_INTEGRATION_ID") if env.get("AFAS_INTEGRATION_ID") else None,
    )


def spotler_client(env: Mapping[str, str] = os.environ) -> SpotlerClient:
    if spotler_mode(env) == "sandbox":
        return SpotlerClient(
            base_url=f"{_sandbox_url(env)}/spotler/integrationservice-1.1.0",
            consumer_key=SANDBOX_SPOTLER_KEY,
            consumer_secret=SANDBOX_SPOTLER_SECRET,
        )
    options = {"base_url": env["SPOTLER_BASE_URL"]} if env.get("SPOTLER_BASE_URL") else {}
    return SpotlerClient(
        consumer_key=dg.EnvVar("SPOTLER_CONSUMER_KEY"), consumer_secret=dg.EnvVar("SPOTLER_CONSUMER_SECRET"), **options
    )


def mailchimp_client(env: Mapping[str, str] = os.environ) -> MailchimpClient:
    if mailchimp_mode(env) == "sandbox":
        return MailchimpClient(base_url=f"{_sandbox_url(env)}/mailchimp/3.0", api_key=SANDBOX_MAILCHIMP_KEY,
                               list_id=SANDBOX_MAILCHIMP_LIST)
    options = {"base_url": env["MAILCHIMP_BASE_URL"]} if env.get("MAILCHIMP_BASE_URL") else {}
    return MailchimpClient(api_key=dg.EnvVar("MAILCHIMP_API_KEY"), list_id=env["MAILCHIMP_LIST_ID"], **options)


def xelion_client(env: Mapping[str, str] = os.environ) -> XelionClient:
    options: dict[str, object] = {"user_space": env.get("XELION_USER_SPACE", "").strip() or XELION_DEFAULT_USER_SPACE}
    if _set(env, "XELION_APP_KEY"):
        options["app_key"] = dg.EnvVar("XELION_APP_KEY")
    if xelion_mode(env) == "sandbox":
        return XelionClient(base_url=f"{_sandbox_url(env)}/xelion/api/v1/master", user_name=SANDBOX_XELION_USER,
                            password=SANDBOX_XELION_PASSWORD, **options)
    return XelionClient(base_url=env["XELION_BASE_URL"].strip(), user_name=env["XELION_USER_NAME"].strip(),
                        password=dg.EnvVar("XELION_PASSWORD"), **options)


class Endpoint(NamedTuple):
    """Where a system is reached: its base URL and the setting that chose it."""

    url: str
    setting: str

    @property
    def sandbox(self) -> bool:
        return self.setting == "AFAS_PIPELINE_SANDBOX_URL"


def endpoints(env: Mapping[str, str] = os.environ) -> dict[str, Endpoint]:
    """The base URL of AFAS and of each destination, as the clients built here will call them (the sandbox's own
    URL for a system that is the sandbox). Raises ConfigurationError as the modes do."""
    sandbox = Endpoint(_sandbox_url(env), "AFAS_PIPELINE_SANDBOX_URL")
    found = {name: sandbox for name, mode in (("afas", afas_mode), ("spotler", spotler_mode),
                                              ("mailchimp", mailchimp_mode), ("xelion", xelion_mode))
             if mode(env) == "sandbox"}
    if "afas" not in found:
        setting = "AFAS_BASE_URL" if _set(env, "AFAS_BASE_URL") else "AFAS_ENVIRONMENT_ID"
        found["afas"] = Endpoint(afas_client(env).resolved_base_url(), setting)
    if "spotler" not in found:
        found["spotler"] = Endpoint(env.get("SPOTLER_BASE_URL") or SPOTLER_URL_EXAMPLE, "SPOTLER_BASE_URL")
    if "mailchimp" not in found:
        if _set(env, "MAILCHIMP_BASE_URL"):
            found["mailchimp"] = Endpoint(env["MAILCHIMP_BASE_URL"].strip(), "MAILCHIMP_BASE_URL")
        else:  # the data centre the key names; the key itself is never shown
            found["mailchimp"] = Endpoint(api_root_for_key(env["MAILCHIMP_API_KEY"]), "MAILCHIMP_API_KEY")
    if "xelion" not in found:
        found["xelion"] = Endpoint(env["XELION_BASE_URL"].strip(), "XELION_BASE_URL")
    return found


def build_resources(env: Mapping[str, str] = os.environ) -> dict[str, object]:
    check_settings(env)
    return {
        "afas": afas_client(env),
        "spotler": spotler_client(env),
        "mailchimp": mailchimp_client(env),
        "xelion": xelion_client(env),
        "sync_state": sync_state(env),
        "io_manager": ParquetIOManager(base_dir=env.get("AFAS_PIPELINE_STORAGE") or None,
                                       personal_data=env.get("AFAS_PIPELINE_PERSONAL_DATA", "").strip() or "disk"),
        "alerts": alerts_resource(env),
    }


def sync_state(env: Mapping[str, str] = os.environ) -> SyncStateResource:
    """The sync state at AFAS_PIPELINE_STATE: a SQLite file path, or a Postgres URL, read through `dg.EnvVar` (it
    holds a password) so it never lands in the run config the Dagster UI shows."""
    location = env.get("AFAS_PIPELINE_STATE") or None
    return SyncStateResource(path=dg.EnvVar("AFAS_PIPELINE_STATE") if location and is_url(location) else location)


# --- the checks, one generator per group of settings ---------------------------------------------------


def _set(env: Mapping[str, str], name: str) -> bool:
    return bool(env.get(name, "").strip())


def _wants_production_afas(env: Mapping[str, str]) -> bool:
    return any(_set(env, name) for name in ("AFAS_TOKEN", "AFAS_ENVIRONMENT_ID", "AFAS_BASE_URL"))


def _sandbox_url(env: Mapping[str, str]) -> str:
    return (env.get("AFAS_PIPELINE_SANDBOX_URL") or DEFAULT_SANDBOX_URL).rstrip("/")


def _afas_problems(env: Mapping[str, str]) -> Iterator[str]:
    environment = env.get("AFAS_ENVIRONMENT")
    if environment and environment not in AFAS_ENVIRONMENTS:
        yield f"AFAS_ENVIRONMENT is '{printable(environment)}': set it to production, test or accept (or unset it)"
    if not _wants_production_afas(env):
        return
    token, environment_id, base_url = (env.get(name, "").strip() for name in
                                       ("AFAS_TOKEN", "AFAS_ENVIRONMENT_ID", "AFAS_BASE_URL"))
    if not token:
        given = "AFAS_BASE_URL" if base_url else "AFAS_ENVIRONMENT_ID"
        yield (f"AFAS_TOKEN is not set, but {given} is: set AFAS_TOKEN to the App Connector token, or unset "
               f"AFAS_ENVIRONMENT_ID and AFAS_BASE_URL to use the sandbox")
    elif not (_HEX64.fullmatch(token) or _XML_TOKEN.fullmatch(token)):
        # Its length helps to spot a truncated copy; the value itself is never shown.
        yield (f"AFAS_TOKEN is not an App Connector token ({len(token)} characters): set it to the 64 hexadecimal "
               f"characters of its <data> part, or to the whole <token><version>1</version><data>...</data></token>")
    if not (environment_id or base_url):
        yield ("AFAS_TOKEN is set but neither AFAS_ENVIRONMENT_ID nor AFAS_BASE_URL is: set AFAS_ENVIRONMENT_ID to "
               "your environment number (12345 in https://12345.rest.afas.online)")
    if environment_id and not _DIGITS.fullmatch(environment_id):
        yield (f"AFAS_ENVIRONMENT_ID '{printable(environment_id)}' is not an AFAS environment number: set it to "
               f"the digits of your environment (12345 in https://12345.rest.afas.online)")
    if base_url:
        yield from _optional(base_url_problem("AFAS_BASE_URL", base_url, sends="the AFAS token",
                                              example=AFAS_URL_EXAMPLE))
    if _CONTROL_OR_SPACE.search(env.get("AFAS_INTEGRATION_ID", "")):
        yield ("AFAS_INTEGRATION_ID holds a space, a line break or another control character: set it to the "
               "IntegrationId AFAS gave you (e.g. 12345_123456), on one line")


def _spotler_problems(env: Mapping[str, str]) -> Iterator[str]:
    key, secret = _set(env, "SPOTLER_CONSUMER_KEY"), _set(env, "SPOTLER_CONSUMER_SECRET")
    yield from _one_of_a_pair(env, "SPOTLER_CONSUMER_KEY", "SPOTLER_CONSUMER_SECRET", "production Spotler")
    if not (key or secret):
        if _set(env, "SPOTLER_BASE_URL"):
            yield ("SPOTLER_BASE_URL is set, but SPOTLER_CONSUMER_KEY and SPOTLER_CONSUMER_SECRET are not, so the "
                   "sandbox would be used: set the key and secret too, or unset SPOTLER_BASE_URL")
        return
    for name in ("SPOTLER_CONSUMER_KEY", "SPOTLER_CONSUMER_SECRET"):
        if _CONTROL_OR_SPACE.search(env.get(name, "")):
            yield (f"{name} holds a space, a line break or another control character (a copy-paste leftover?): "
                   f"set it to the value Spotler shows, on one line")
    if env.get("SPOTLER_BASE_URL"):
        yield from _optional(base_url_problem("SPOTLER_BASE_URL", env["SPOTLER_BASE_URL"],
                                              sends="OAuth-signed requests", example=SPOTLER_URL_EXAMPLE))


def _one_of_a_pair(env: Mapping[str, str], first: str, second: str, what: str) -> Iterator[str]:
    """Two settings that only work together: a line when exactly one of them is set."""
    if _set(env, first) != _set(env, second):
        given, missing = (first, second)[:: 1 if _set(env, first) else -1]
        yield f"{missing} is not set, but {given} is: set both for {what}, or neither for the sandbox"


def _mailchimp_problems(env: Mapping[str, str]) -> Iterator[str]:
    key = _set(env, "MAILCHIMP_API_KEY")
    yield from _one_of_a_pair(env, "MAILCHIMP_API_KEY", "MAILCHIMP_LIST_ID",
                              "production Mailchimp (the audience's id is in its settings)")
    if not key:
        if _set(env, "MAILCHIMP_BASE_URL"):
            yield ("MAILCHIMP_BASE_URL is set, but MAILCHIMP_API_KEY is not, so the sandbox would be used: set the "
                   "key and MAILCHIMP_LIST_ID too, or unset MAILCHIMP_BASE_URL")
        return
    if not _MAILCHIMP_KEY.fullmatch(env.get("MAILCHIMP_API_KEY", "").strip()):
        # Its length helps to spot a truncated copy; the value itself is never shown.
        yield (f"MAILCHIMP_API_KEY is not a Mailchimp API key ({len(env['MAILCHIMP_API_KEY'])} characters): set it "
               f"to the key as Mailchimp shows it, 32 hexadecimal characters, a dash and the data centre (e.g. -us21)")
    if _CONTROL_OR_SPACE.search(env.get("MAILCHIMP_LIST_ID", "")):
        yield "MAILCHIMP_LIST_ID holds a space or a control character: set it to the audience id Mailchimp shows"
    if env.get("MAILCHIMP_BASE_URL"):
        yield from _optional(base_url_problem("MAILCHIMP_BASE_URL", env["MAILCHIMP_BASE_URL"],
                                              sends="the Mailchimp API key", example=MAILCHIMP_URL_EXAMPLE))


def _xelion_problems(env: Mapping[str, str]) -> Iterator[str]:
    given = [name for name in XELION_PARTNERS if _set(env, name)]
    if given and len(given) < len(XELION_PARTNERS):
        for missing in (name for name in XELION_PARTNERS if name not in given):
            yield (f"{missing} is not set, but {' and '.join(given)} {'is' if len(given) == 1 else 'are'}: set "
                   f"{', '.join(XELION_PARTNERS[:-1])} and {XELION_PARTNERS[-1]} for production Xelion, or none of "
                   f"them for the sandbox")
    if _CONTROL_OR_SPACE.search(env.get("XELION_USER_NAME", "").strip()):
        yield "XELION_USER_NAME holds a space or a control character: set it to the Xelion user's login name"
    if _CONTROL.search(env.get("XELION_PASSWORD", "")):
        yield ("XELION_PASSWORD holds a line break or another control character (a copy-paste leftover?): set it "
               "to the password alone, on one line")
    if _CONTROL_OR_SPACE.search(env.get("XELION_USER_SPACE", "").strip()):
        yield ("XELION_USER_SPACE holds a space or a control character: set it to a short name of this deployment's "
               "own, like afas-pipeline-prod")
    if _set(env, "XELION_APP_KEY") and _CONTROL_OR_SPACE.search(env["XELION_APP_KEY"]):  # sent as it is
        yield "XELION_APP_KEY holds a space or a control character: set it to the appKey Xelion gave, on one line"
    if env.get("XELION_BASE_URL", "").strip():
        yield from _optional(base_url_problem("XELION_BASE_URL", env["XELION_BASE_URL"].strip(),
                                              sends="the Xelion password", example=XELION_URL_EXAMPLE))


def _sandbox_problems(env: Mapping[str, str]) -> Iterator[str]:
    if (_wants_production_afas(env) and _set(env, "SPOTLER_CONSUMER_KEY") and _set(env, "MAILCHIMP_API_KEY")
            and _set(env, "XELION_BASE_URL")):
        return  # no side uses the sandbox
    url = env.get("AFAS_PIPELINE_SANDBOX_URL")
    if url:
        yield from _optional(base_url_problem("AFAS_PIPELINE_SANDBOX_URL", url, sends="the sandbox's credentials",
                                              example=DEFAULT_SANDBOX_URL))


def _folder_problems(env: Mapping[str, str]) -> Iterator[str]:
    home = env.get("DAGSTER_HOME")
    if home:
        if not os.path.isabs(home):
            yield (f"DAGSTER_HOME '{printable(home)}' is a relative path: Dagster needs an absolute one, e.g. "
                   f"{printable(os.path.abspath(home))}")
        elif not os.path.isdir(home):
            what = "is a file" if os.path.exists(home) else "does not exist"
            yield (f"DAGSTER_HOME '{printable(home)}' {what}: point it at an existing folder (create it with "
                   f"mkdir -p)")
    storage = env.get("AFAS_PIPELINE_STORAGE", "").strip()
    if storage:
        try:
            yield from _optional(open_storage(storage, env).problem())
        except StorageError as exc:
            yield str(exc)
    state = env.get("AFAS_PIPELINE_STATE")
    if state and is_url(state):
        yield from _optional(state_url_problem(state))
    elif state and os.path.isdir(state):
        yield (f"AFAS_PIPELINE_STATE '{printable(state)}' is a folder: point it at the sync state's file, e.g. "
               f"{printable(os.path.join(state, 'sync_state.sqlite'))}")
    yield from mappings_folder_problems(_mappings_folder(env), DESTINATIONS)


def _personal_data_problems(env: Mapping[str, str]) -> Iterator[str]:
    given = env.get("AFAS_PIPELINE_PERSONAL_DATA", "").strip()
    if given and given not in ("disk", "memory"):
        yield (f"AFAS_PIPELINE_PERSONAL_DATA is '{printable(given)}': set it to disk (personal data stored until its "
               "retention, the default) or memory (held for the run only, never stored)")


def _salt_problems(env: Mapping[str, str]) -> Iterator[str]:
    if "AFAS_PIPELINE_HASH_SALT" in env and not env["AFAS_PIPELINE_HASH_SALT"]:
        yield ("AFAS_PIPELINE_HASH_SALT is set but empty, which leaves the key hashes in check metadata unsalted: "
               "set it to a value of your own, or unset it")


def _mappings_folder(env: Mapping[str, str]) -> Path:
    from afas_pipeline.afas.sources import MAPPINGS_DIR

    given = env.get("AFAS_PIPELINE_MAPPINGS")
    return Path(given) if given else MAPPINGS_DIR


def _optional(problem: str | None) -> Iterator[str]:
    if problem:
        yield problem
