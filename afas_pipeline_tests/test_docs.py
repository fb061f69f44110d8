"""The docs an on-call engineer lands on: every asset's `runbook` link leads to a section of docs/operations.md
that exists, and every link between the docs resolves."""

import re
from pathlib import Path

import dagster as dg
import pytest

from afas_pipeline.definitions import defs
from afas_pipeline.resources import ConfigurationError
from afas_pipeline.runbook import DOCS, FALLBACK, docs_url, section, with_runbooks

ROOT = DOCS.parent
#: The sections the other parts of the project (alerts, CLI help) send people to.
PROMISED = ("a-failed-run", "a-failed-check", "rerun", "backfill", "rejected-records", "alerts", "retries", "partitions")


def anchors(markdown: Path) -> set[str]:
    """The anchors GitHub makes of a Markdown file's headings: lower case, punctuation dropped, spaces as
    hyphens, a repeated one suffixed -1, -2, ... Lines in fenced code blocks are not headings."""
    found: set[str] = set()
    repeats: dict[str, int] = {}
    fenced = False
    for line in markdown.read_text(encoding="utf-8").splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
        heading = re.match(r"#{1,6} (.+)", line)
        if fenced or not heading:
            continue
        slug = re.sub(r"[^\w\- ]", "", heading.group(1).strip().lower()).replace(" ", "-")
        n = repeats[slug] = repeats.get(slug, -1) + 1
        found.add(f"{slug}-{n}" if n else slug)
    return found


def test_github_anchors_of_headings():
    assert "configuration-sandbox-or-production" in anchors(ROOT / "README.md")
    assert "incoming-calls-open-the-afas-card-call-lookup" in anchors(ROOT / "README.md")
    assert "afas-reads" in anchors(DOCS / "operations.md")


def test_every_asset_links_to_its_section_of_the_operations_runbook():
    sections = anchors(DOCS / "operations.md")
    graph = defs.resolve_asset_graph()
    keys = list(graph.get_all_asset_keys())
    assert len(keys) > 30
    for key in keys:
        url = graph.get(key).metadata["runbook"]
        assert isinstance(url, dg.UrlMetadataValue), key
        page, anchor = url.value.split("#")
        assert page == f"{DOCS.as_uri()}/operations.md"
        # A new kind of asset gets a section of its own, not the general one.
        assert anchor in sections and anchor != FALLBACK, (key, anchor)


@pytest.mark.parametrize("asset, anchor", [
    ("afas_contacts_changes", "afas-reads"), ("afas_debtors", "afas-reads"),
    ("spotler_audience_delta", "audiences-and-plans"), ("mailchimp_sync_plan", "audiences-and-plans"),
    ("spotler_sync", "syncs"), ("mailchimp_sync_delta", "syncs"), ("spotler_rejected", "rejected-records"),
    ("mailchimp_bounce_feedback", "feedback"), ("spotler_afas_write_back", "write-back-to-afas"),
    ("spotler_mailing_history", "mailing-history"), ("xelion_address_book_delta", "xelion-address-book"),
    ("xelion_phone_index", "xelion-phone-index"), ("xelion_call_reports", "xelion-call-reports"),
    ("hubspot_something_new", FALLBACK),
])
def test_the_runbook_section_follows_the_kind_of_asset(asset, anchor):
    assert section(asset) == anchor


def test_the_docs_url_comes_from_the_environment():
    asset = dg.AssetSpec("spotler_sync")
    env = {"AFAS_PIPELINE_DOCS_URL": "https://git.example.com/data/afas-pipeline/-/blob/main/docs/"}
    [linked] = with_runbooks([asset], env)
    assert linked.metadata["runbook"].value == (
        "https://git.example.com/data/afas-pipeline/-/blob/main/docs/operations.md#syncs")
    assert docs_url({}) == DOCS.as_uri() and DOCS.as_uri().startswith("file:///")


@pytest.mark.parametrize("value", ["docs/", "git.example.com/docs", "ftp://example.com/docs", "https:///docs"])
def test_a_docs_url_that_is_no_url_is_one_line_naming_the_setting(value):
    with pytest.raises(ConfigurationError, match=r"^AFAS_PIPELINE_DOCS_URL '.*' is not an http\(s\) or file URL"):
        docs_url({"AFAS_PIPELINE_DOCS_URL": value})


def test_the_promised_sections_exist():
    assert set(PROMISED) <= anchors(DOCS / "operations.md")


@pytest.mark.parametrize("page", sorted(p.name for p in DOCS.glob("*.md")))
def test_every_link_in_the_docs_resolves(page):
    text = (DOCS / page).read_text(encoding="utf-8")
    links = re.findall(r"\]\(([^)\s]+)\)", text)
    for link in links:
        if link.startswith(("http://", "https://")):
            continue
        target, _, anchor = link.partition("#")
        path = (DOCS / target).resolve() if target else DOCS / page
        assert path.is_file(), f"{page}: {link}"
        if anchor:
            assert anchor in anchors(path), f"{page}: {link}"
