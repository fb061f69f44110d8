"""Every asset links to what to do when it fails: metadata `runbook`, a URL to its section of docs/operations.md.

The docs are read where the people who run the pipeline read them: `AFAS_PIPELINE_DOCS_URL` (e.g. the docs
folder of the repository on the company's Git server), else the docs folder of this checkout as a file:// URL.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from urllib.parse import urlsplit

import dagster as dg

from afas_pipeline.lib.urls import shown_url
from afas_pipeline.resources import ConfigurationError

DOCS = Path(__file__).resolve().parents[1] / "docs"
#: The section of docs/operations.md for each kind of asset, by the asset's whole name.
SECTIONS = {
    r"afas_\w+": "afas-reads",
    r"\w+_(audience|sync_plan)(_delta)?": "audiences-and-plans",
    r"\w+_sync(_delta)?": "syncs",
    r"\w+_rejected": "rejected-records",
    r"\w+_(optout|bounce)_feedback": "feedback",
    r"\w+_afas_write_back": "write-back-to-afas",
    r"\w+_mailing_history": "mailing-history",
    r"xelion_address_book(_delta)?": "xelion-address-book",
    r"xelion_phone_index": "xelion-phone-index",
    r"xelion_call_reports": "xelion-call-reports",
    r"personal_data_retention": "retention",
    r"erasure_(requests|audit)": "erasure",
}
#: An asset of a kind the docs have no section for yet links to the general steps.
FALLBACK = "a-failed-run"


def section(asset_name: str) -> str:
    """The anchor in docs/operations.md for this asset."""
    for pattern, anchor in SECTIONS.items():
        if re.fullmatch(pattern, asset_name):
            return anchor
    return FALLBACK


def docs_url(env: Mapping[str, str] = os.environ) -> str:
    """Where the docs folder is read; a value that is not an http(s) or file URL stops the code location loading."""
    given = env.get("AFAS_PIPELINE_DOCS_URL")
    if not given:
        return DOCS.as_uri()
    parts = urlsplit(given)
    if parts.scheme not in ("http", "https", "file") or (parts.scheme != "file" and not parts.netloc):
        raise ConfigurationError(f"AFAS_PIPELINE_DOCS_URL '{shown_url(given)}' is not an http(s) or file URL: give the "
                                 "URL of the docs folder, e.g. https://git.example.com/data/afas-pipeline/-/blob/main/docs")
    return given.rstrip("/")


def with_runbooks(assets: Iterable[dg.AssetsDefinition],
                  env: Mapping[str, str] = os.environ) -> list[dg.AssetsDefinition]:
    """The assets, each with metadata `runbook`: the URL of its section of docs/operations.md."""
    base = docs_url(env)

    def add(spec: dg.AssetSpec) -> dg.AssetSpec:
        url = f"{base}/operations.md#{section(spec.key.to_user_string())}"
        return spec.merge_attributes(metadata={"runbook": dg.MetadataValue.url(url)})

    return dg.map_asset_specs(add, list(assets))
