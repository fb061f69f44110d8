"""mappings/afas_sources.yaml is validated at load time with errors naming file and field."""

import pytest

from afas_pipeline.afas.sources import MappingError, default_sources, load_sources


def test_shipped_sources_load():
    sources = default_sources()
    assert sources.contacts.connector == "Sync_Contacts"
    # R2: the contacts delta also looks at the person's and organisation's own modified dates.
    assert set(sources.contacts.modified) == {"ContactModified", "PersonModified", "OrganisationModified"}
    # R9: contact id, person number and organisation id are required.
    assert {"ContactId", "PersonId", "OrganisationId"} <= set(sources.contacts.required)


def test_key_is_always_required_and_used_for_sorting(tmp_path):
    path = tmp_path / "afas_sources.yaml"
    body = "\n".join(
        f"{e}:\n  connector: C_{e}\n  key: Id\n  modified: [Modified]" for e in ("contacts", "persons", "organisations")
    )
    path.write_text(body)
    source = load_sources(path).persons
    assert source.required == ("Id",)
    assert source.order_by == ("Id",)


def test_unknown_setting_is_refused_naming_file_and_field(tmp_path):
    path = tmp_path / "afas_sources.yaml"
    path.write_text(
        "contacts:\n  connector: X\n  key: Id\n  modified: [M]\n  filter: everything\n"
        "persons:\n  connector: P\n  key: Id\n  modified: [M]\n"
        "organisations:\n  connector: O\n  key: Id\n  modified: [M]\n"
    )
    with pytest.raises(MappingError) as error:
        load_sources(path)
    assert str(path) in str(error.value)
    assert "contacts.filter" in str(error.value)


def test_missing_entity_and_bad_yaml_are_clear(tmp_path):
    path = tmp_path / "afas_sources.yaml"
    path.write_text("contacts: [unclosed")
    with pytest.raises(MappingError, match="not valid YAML"):
        load_sources(path)
    path.write_text("contacts:\n  connector: X\n  key: Id\n  modified: [M]\n")
    with pytest.raises(MappingError, match="persons"):
        load_sources(path)
