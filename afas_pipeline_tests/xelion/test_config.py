"""mappings/xelion.yaml: every problem names the file, the setting and the rule, at load time."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from afas_pipeline.mapping.errors import MappingError
from afas_pipeline.xelion.config import load_settings

SHIPPED = Path(__file__).resolve().parents[2] / "mappings" / "xelion.yaml"


def _settings(tmp_path: Path, edit, env: dict | None = None):
    raw = yaml.safe_load(SHIPPED.read_text())
    edit(raw)
    path = tmp_path / "xelion.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path, lambda: load_settings(path, env=env)


def test_the_shipped_settings_load():
    settings = load_settings(SHIPPED, env={})
    assert settings.uploads_reports and settings.call_reports.dossier_item_type == 2
    assert settings.insite_card("4711") == "https://12345.afasinsite.nl/verkooprelatie-prs?BcId=4711"


@pytest.mark.parametrize("edit, env, where, says", [
    (lambda r: r["connectors"].pop("persons"), None, "connectors.persons: X1", "required setting is missing"),
    (lambda r: r["connectors"].update(persons="Profit_Persons"), None, "connectors.persons: X1",
     "not the GetConnector the pipeline reads persons from ('Sync_Persons'"),
    (lambda r: r.update(insite_url="https://12345.afasinsite.nl/prs?BcId=1"), None, "insite_url: X2", "<BCID>"),
    (lambda r: r["afas"].update(token="3F4C8A34E5A41B1BD3996776431E1EB94C5CF79EE3985EA2085301168734E371"), None,
     "afas.token: X1", "never write a token in a file"),
    (lambda r: r["afas"].update(token="XELION_AFAS_TOKEN"), {}, "afas.token: X1", "write AFAS_TOKEN here"),
    (lambda r: r["call_reports"].update(dossier_item_type=0), None, "call_reports.dossier_item_type: X3",
     "greater than or equal to 1"),
    (lambda r: r["call_reports"].update(always_syncc=True), None, "call_reports.always_syncc: X3", "unknown setting"),
    (lambda r: r["afas"].update(host="https://12345.afasinsite.nl"), None, "afas.host: X1", "not a Profit server host"),
    (lambda r: r["afas"].update(host="https://12345.rest.afas.online"), {"AFAS_ENVIRONMENT_ID": "54321"},
     "afas.host: X1", "not the AFAS the pipeline reads (https://54321.rest.afas.online, AFAS_ENVIRONMENT_ID)"),
    (lambda r: r["afas"].update(host="https://12345.rest.afas.online"), {}, "afas.host: X1",
     "the pipeline reads the AFAS sandbox"),
])
def test_a_bad_setting_names_file_setting_and_rule(tmp_path, edit, env, where, says):
    path, load = _settings(tmp_path, edit, env)
    with pytest.raises(MappingError) as caught:
        load()
    text = str(caught.value)
    assert text.startswith(f"{path}: {where}: ") and says in text
    assert "3F4C8A34E5A4" not in text  # a token written by mistake is never echoed


def test_a_host_that_matches_the_pipelines_afas_loads(tmp_path):
    _, load = _settings(tmp_path, lambda r: r["afas"].update(host="https://12345.resttest.afas.online"),
                        {"AFAS_ENVIRONMENT_ID": "12345", "AFAS_ENVIRONMENT": "test"})
    assert load().afas.host == "https://12345.resttest.afas.online"


def test_drift_names_the_dossier_item_types_afas_has_and_the_fields_a_connector_lacks(sandbox, afas_sandbox_clean):
    from afas_pipeline.afas.client import AfasClient
    from afas_pipeline.afas.sources import default_sources
    from afas_pipeline.xelion.config import FIELDS, xelion_drift

    afas = AfasClient(base_url=sandbox.afas_base_url, token=sandbox.afas_token)
    settings = load_settings(SHIPPED, env={})
    assert xelion_drift(afas, settings, default_sources()) == []
    wrong = settings.model_copy(update={"call_reports": settings.call_reports.model_copy(
        update={"dossier_item_type": 99})})
    [line] = xelion_drift(afas, wrong, default_sources())
    assert line.startswith("mappings/xelion.yaml: call_reports.dossier_item_type (99): X3: ")
    assert "2 Telefoonnotitie" in line and "7 Mailing" in line
    sources = default_sources().model_copy(update={"persons": default_sources().persons.model_copy(
        update={"connector": "Profit_Contacts"})})
    [line] = xelion_drift(afas, settings, sources)
    assert line.startswith("mappings/xelion.yaml: connectors.persons: X1: GetConnector 'Profit_Contacts' lacks")
    assert "BcId" in line and set(FIELDS["persons"]) >= {"BcId"}
