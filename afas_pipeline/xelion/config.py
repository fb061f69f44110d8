"""`mappings/xelion.yaml`: the settings of the AFAS link of Xelion's phone system (seed 003's settings page),
validated when the code location loads; every problem names the file, the setting and the rule.

    afas:               the "Profit server host" and the environment variable holding its token (never the token)
    sync_active:        "Synchronisatie actief": off, the address book and the call reports stand still
    connectors:         the three GetConnectors ("de connectoren zijn alle drie nodig")
    insite_url:         "URL sjabloon Profit organisatie/persoon", with <BCID> where the card's BcId goes (X2)
    call_reports:       "Type dossier item" (optional: without it no report is uploaded), "Mp3 opnames
                        synchroniseren", "Altijd synchroniseren" and "Tekst bij leeg onderwerp" (X3, X4)
    phone_region:       the country a number without +/00 is read in (NL)
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from afas_pipeline.afas.client import ENVIRONMENT_HOSTS
from afas_pipeline.afas.sources import MAPPINGS_DIR, AfasSources, default_sources
from afas_pipeline.mapping.errors import MappingError, Problem

FILE_NAME = "xelion.yaml"
BCID = "<BCID>"
#: The AFAS fields the address book, the phone index and the call reports read, per GetConnector (X1, X2).
ORGANISATION_FIELDS = ("OrganisationId", "BcId", "Name", "ChamberOfCommerce", "Street", "HouseNumber",
                       "HouseNumberAddition", "PostalCode", "City", "Country", "Phone", "MailWork")
PERSON_FIELDS = ("PersonId", "BcId", "Initials", "FirstName", "Prefix", "LastName", "Gender", "MailWork", "Phone",
                 "PhoneMobile")
CONTACT_FIELDS = ("ContactId", "PersonId", "OrganisationId", "ContactKind", "Function", "Phone", "Mobile")
FIELDS = {"organisations": ORGANISATION_FIELDS, "persons": PERSON_FIELDS, "contacts": CONTACT_FIELDS}
_ENV_NAME = re.compile(r"[A-Z_][A-Z0-9_]*")
_AFAS_HOST = re.compile(r"https://[0-9]+\.rest(?:test|accept)?\.afas\.online/?")
_TOKENISH = re.compile(r"[0-9A-Fa-f]{32,}|<token>", re.IGNORECASE)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AfasLink(_Strict):
    """Where the link reaches AFAS. The pipeline reads one AFAS environment (AFAS_ENVIRONMENT_ID or
    AFAS_BASE_URL); these settings say which one this link expects, so a link configured for another
    environment stops at load time instead of filing call reports in the wrong administration."""

    host: str | None = None
    """"Profit server host": https://<klant_id>.rest.afas.online, or none for the pipeline's AFAS (the sandbox)."""
    token: str = "AFAS_TOKEN"
    """The NAME of the environment variable that holds the App Connector token (read through dg.EnvVar)."""

    @field_validator("host")
    @classmethod
    def _host(cls, value: str | None) -> str | None:
        if value is not None and not _AFAS_HOST.fullmatch(value.strip()):
            raise ValueError(f"{value!r} is not a Profit server host: write https://<klant_id>.rest.afas.online "
                             f"(your own klant id), or leave `host` out to use the pipeline's AFAS")
        return value.strip().rstrip("/") if value else None

    @field_validator("token")
    @classmethod
    def _token(cls, value: str) -> str:
        if _TOKENISH.search(value):
            raise ValueError("this looks like a token itself: never write a token in a file; put it in an "
                             "environment variable and name that variable here (e.g. AFAS_TOKEN)")
        if not _ENV_NAME.fullmatch(value):
            raise ValueError("must be the name of an environment variable (capitals, digits and _), e.g. AFAS_TOKEN")
        return value


class Connectors(_Strict):
    """The three GetConnectors; all three are needed (seed 003). They must be the ones of afas_sources.yaml."""

    organisations: str = Field(min_length=1)
    persons: str = Field(min_length=1)
    contacts: str = Field(min_length=1)


class CallReports(_Strict):
    dossier_item_type: int | None = Field(default=None, ge=1)
    """"Type dossier item": the KnSubject StId of call reports; none: no report is uploaded."""
    sync_mp3: bool = False
    """"Mp3 opnames synchroniseren": attach the call's recording (KnSubjectAttachment) when there is one (X4)."""
    always_sync: bool = False
    """"Altijd synchroniseren": a report for every call, even without a note or a recording (X3)."""
    empty_subject_text: str = Field(default="Telefoongesprek", min_length=1, max_length=255)
    """"Tekst bij leeg onderwerp": the subject of a report whose call has none (a subject is mandatory in AFAS)."""


class XelionSettings(_Strict):
    destination: Literal["xelion"]
    afas: AfasLink = AfasLink()
    sync_active: bool = True
    connectors: Connectors
    insite_url: str
    call_reports: CallReports = CallReports()
    phone_region: str = Field(default="NL", pattern=r"^[A-Z]{2}$")

    @field_validator("insite_url")
    @classmethod
    def _insite_url(cls, value: str) -> str:
        if BCID not in value:
            raise ValueError(f"the template needs {BCID} where the organisation's or person's BcId goes, e.g. "
                             f"https://12345.afasinsite.nl/verkooprelatie-prs?BcId={BCID}")
        if not value.startswith("https://"):
            raise ValueError("must be an https:// URL (the InSite environment's address)")
        return value

    def insite_card(self, bcid: str) -> str:
        """The InSite card URL of an organisation or person."""
        return self.insite_url.replace(BCID, str(bcid))

    @property
    def uploads_reports(self) -> bool:
        return self.sync_active and self.call_reports.dossier_item_type is not None


# Rule per setting, for the error lines (docs/rules.md X1-X4; M2 the shape of the file).
_RULES = {"connectors": "X1", "insite_url": "X2", "call_reports": "X3", "afas": "X1", "phone_region": "X1"}


def load_settings(path: Path | str | None = None, *, sources: AfasSources | None = None,
                  env: Mapping[str, str] | None = None) -> XelionSettings:
    """Read and validate `xelion.yaml`; every problem raises MappingError naming file, setting and rule. With
    `env` (the process's environment), `afas:` is also checked against the AFAS the pipeline reads."""
    path = Path(path) if path is not None else MAPPINGS_DIR / FILE_NAME
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise MappingError(f"{path}: file not found: copy the project's mappings/{FILE_NAME} there, or set "
                           "AFAS_PIPELINE_MAPPINGS to the folder that holds it", file=path) from exc
    except yaml.YAMLError as exc:
        raise MappingError(f"{path}: not valid YAML: {exc}", file=path) from exc
    if not isinstance(raw, dict):
        raise MappingError.of(path, [Problem("<root>", "M2", "the file must be a YAML mapping with `destination: "
                                                             "xelion`, `connectors:`, `insite_url:`, ...")])
    try:
        settings = XelionSettings.model_validate(raw)
    except ValidationError as exc:
        raise MappingError.of(path, [_problem(err) for err in exc.errors(include_url=False)]) from exc
    problems = _connector_problems(settings, sources or default_sources())
    if env is not None:
        problems += afas_link_problems(settings, env)
    if problems:
        raise MappingError.of(path, problems)
    return settings


@cache
def default_settings() -> XelionSettings:
    return load_settings()


def _problem(err: dict) -> Problem:
    loc = ".".join(str(p) for p in err["loc"]) or "<root>"
    rule = _RULES.get(str(err["loc"][0]) if err["loc"] else "", "M2")
    kind = err["type"]
    if kind == "extra_forbidden":
        message = "unknown setting; correct the spelling or remove it (mappings/xelion.yaml documents each one)"
    elif kind == "missing":
        message = "required setting is missing; add it (mappings/xelion.yaml has it with a comment)"
    elif kind == "value_error":
        message = err["msg"].removeprefix("Value error, ")
    else:
        message = f"{err['msg'].replace('Input should be', 'must be')} (got {err.get('input')!r})"
    return Problem(loc, rule, message)


def afas_link_problems(settings: XelionSettings, env: Mapping[str, str]) -> list[Problem]:
    """Whether `afas:` names the AFAS the pipeline reads (one AFAS environment per code location): the host
    against AFAS_BASE_URL or AFAS_ENVIRONMENT_ID(+AFAS_ENVIRONMENT), the token variable against AFAS_TOKEN."""
    problems = []
    link = settings.afas
    base, environment_id = env.get("AFAS_BASE_URL", "").strip(), env.get("AFAS_ENVIRONMENT_ID", "").strip()
    if link.host is not None:
        if base:
            parts = urlsplit(base)
            pipeline, setting = f"{parts.scheme}://{parts.netloc}", "AFAS_BASE_URL"
        elif environment_id:
            host = ENVIRONMENT_HOSTS.get(env.get("AFAS_ENVIRONMENT") or "production", "rest")
            pipeline, setting = f"https://{environment_id}.{host}.afas.online", "AFAS_ENVIRONMENT_ID"
        else:
            pipeline, setting = None, None
        if pipeline is None:
            problems.append(Problem("afas.host", "X1", f"{link.host} is set, but the pipeline reads the AFAS sandbox "
                                                       "(AFAS_ENVIRONMENT_ID and AFAS_BASE_URL are not set): set "
                                                       "AFAS_ENVIRONMENT_ID and AFAS_TOKEN for that environment, or "
                                                       "leave `host` out"))
        elif pipeline.lower() != link.host.lower():
            problems.append(Problem("afas.host", "X1", f"{link.host} is not the AFAS the pipeline reads ({pipeline}, "
                                                       f"{setting}): the address book and the call reports use the "
                                                       f"pipeline's AFAS; make them agree"))
    if link.token != "AFAS_TOKEN":
        problems.append(Problem("afas.token", "X1", f"the pipeline reads AFAS with the token in AFAS_TOKEN, not "
                                                    f"{link.token}: one App Connector token serves every destination; "
                                                    f"write AFAS_TOKEN here"))
    return problems


def _connector_problems(settings: XelionSettings, sources: AfasSources) -> list[Problem]:
    """The link reads the pipeline's AFAS reads (one read per 15 minutes serves every destination), so its three
    connectors must be the ones afas_sources.yaml names."""
    read = sources.connectors()
    return [
        Problem(f"connectors.{entity}", "X1",
                f"{given!r} is not the GetConnector the pipeline reads {entity} from ({read[entity]!r}, "
                f"mappings/afas_sources.yaml): name the same one here, or change both")
        for entity, given in settings.connectors.model_dump().items() if given != read[entity]
    ]


def xelion_drift(afas, settings: XelionSettings, sources: AfasSources, file: str = f"mappings/{FILE_NAME}") -> list[str]:
    """The settings against AFAS as it is now (`validate-mappings --drift`): every field the link reads exists in
    its GetConnector (X1), and the dossier item type of the call reports is one AFAS has (X3; the line names the
    types it has). One line per problem; AFAS that cannot be reached raises, as for every other read."""
    from afas_pipeline.afas.errors import AfasConfigError
    from afas_pipeline.mapping.drift import SUBJECT_TYPE_DESCRIPTION, SUBJECT_TYPE_ID, SUBJECT_TYPES_CONNECTOR

    problems = []
    for entity, fields in FIELDS.items():
        try:
            afas.require_fields(sources[entity].connector, fields, rule="X1")
        except AfasConfigError as exc:
            problems.append(f"{file}: connectors.{entity}: X1: {exc.args[0]}")
    wanted = settings.call_reports.dossier_item_type
    if wanted is not None:
        types, _ = afas.read(SUBJECT_TYPES_CONNECTOR, order_by=[SUBJECT_TYPE_ID])
        known = {int(t): d for t, d in zip(types[SUBJECT_TYPE_ID], types[SUBJECT_TYPE_DESCRIPTION])}
        if wanted not in known:
            names = ", ".join(f"{t} {d}" for t, d in sorted(known.items()))
            problems.append(f"{file}: call_reports.dossier_item_type ({wanted}): X3: AFAS has no such dossier item "
                            f"type; the types it has are: {names}")
    return problems
