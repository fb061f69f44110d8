"""mappings/spotler.yaml loads, and every rule a mapping file can break is refused with a message that
names the file, the setting and the rule."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from afas_pipeline.afas.filters import Condition, Filter, Op
from afas_pipeline.afas.sources import MAPPINGS_DIR
from afas_pipeline.mapping.errors import MappingError
from afas_pipeline.mapping.load import default_mapping, load_mapping
from afas_pipeline.mapping.models import DestinationMapping, FieldRef

SHIPPED = MAPPINGS_DIR / "spotler.yaml"
SHIPPED_RAW = yaml.safe_load(SHIPPED.read_text(encoding="utf-8"))


def field_index(raw: dict, column: str) -> int:
    return next(i for i, f in enumerate(raw["fields"]) if f["afas"] == column)


def broken(tmp_path: Path, change: Callable[[dict], None], shipped: Path = SHIPPED) -> tuple[Path, str]:
    """Write a shipped mapping with one change to a temporary file; return its path and the error text."""
    raw = yaml.safe_load(shipped.read_text(encoding="utf-8"))
    change(raw)
    path = tmp_path / shipped.name
    path.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    with pytest.raises(MappingError) as error:
        load_mapping(path)
    assert error.value.file == path
    return path, str(error.value)


def assert_names(path: Path, message: str, field_path: str, rule: str) -> None:
    assert message.startswith(f"{path}: ") or f"\n  {path}: " in message, message
    assert f"{path}: {field_path}" in message, message
    assert f": {rule}: " in message, message


# --- the shipped file -------------------------------------------------------------------------------


def test_shipped_spotler_mapping_loads_with_the_documented_shape():
    mapping = default_mapping("spotler")
    assert mapping.destination == "spotler"
    assert mapping.file == str(SHIPPED)
    assert mapping.source.connector == "Sync_Contacts"
    assert mapping.external_id.column == "contact.ContactId"  # R9
    assert mapping.email.afas.column == "contact.MailWork"  # R5
    assert mapping.blocked.column == "contact.Blocked"  # R7
    assert mapping.hard_bounce is not None and mapping.hard_bounce.column == "contact.HardBounce"  # R11
    assert mapping.bounce is not None and [n for n, _ in mapping.bounce.parts()] == ["date", "type", "hard"]  # R16
    assert default_mapping("spotler") is mapping  # cached


def test_properties_are_in_file_order_with_the_email_first():
    props = default_mapping("spotler").properties()
    assert props[0] == ("contact.MailWork", "email")
    assert props[1:4] == [("person.FirstName", "firstName"), ("person.Prefix", "infix"), ("person.LastName", "lastName")]
    assert ("contact.Function", "function") in props
    assert len({p for _, p in props}) == len(props)


def test_columns_per_entity_start_with_the_join_keys():
    columns = default_mapping("spotler").columns()
    assert list(columns) == ["contact", "person", "organisation"]
    assert columns["contact"][:4] == ["ContactId", "PersonId", "OrganisationId", "ContactKind"]
    assert {"MailWork", "Blocked", "PermissionNewsletter", "PermissionEvents", "HardBounce", "BounceDate",
            "BounceType", "Function"} <= set(columns["contact"])
    assert columns["person"][0] == "PersonId" and "FirstName" in columns["person"]
    assert columns["organisation"][0] == "OrganisationId" and "Name" in columns["organisation"]
    assert all(len(fields) == len(set(fields)) for fields in columns.values())


def test_r13_write_backs_list_only_text_and_yes_no_fields_with_their_afas_target():
    targets = default_mapping("spotler").write_backs()
    by_column = {t.column: t for t in targets}
    assert by_column["contact.Function"].connector == "KnContact" and by_column["contact.Function"].field == "FuDs"
    assert by_column["contact.Function"].origin == "field" and by_column["contact.Function"].source == "function"
    assert by_column["contact.PermissionNewsletter"].field == "UAC187778054F7C9022679701BEC7FD67"
    assert by_column["contact.PermissionNewsletter"].source == 1
    assert by_column["contact.BounceDate"].origin == "bounce" and by_column["contact.BounceDate"].type == "date"
    # Table links and the protected organisation fields never flow back.
    assert not {"person.Gender", "organisation.Country", "organisation.Name", "organisation.City"} & set(by_column)
    assert {t.type for t in targets if t.origin != "bounce"} <= {"text", "yes_no"}


def test_r6_permission_keys_and_r8_filter():
    mapping = default_mapping("spotler")
    assert mapping.permission_keys() == [("contact.PermissionNewsletter", 1), ("contact.PermissionEvents", 2)]
    assert mapping.source.afas_filter() == Filter.of(Condition("ContactKind", Op.EQ, "PRS"))


def test_both_r8_filters_combine_with_and(tmp_path):
    raw = copy.deepcopy(SHIPPED_RAW)
    raw["source"]["filters"].append({"field": "IsDebtor", "equals": True})
    path = tmp_path / "spotler.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    combined = load_mapping(path).source.afas_filter()
    assert combined == Condition("ContactKind", Op.EQ, "PRS") & Condition("IsDebtor", Op.EQ, True)


def test_field_ref_parses_entity_and_field():
    ref = FieldRef.model_validate("person.FirstName")
    assert (ref.entity, ref.field, ref.column, str(ref)) == ("person", "FirstName", "person.FirstName", "person.FirstName")


def test_model_dump_round_trips():
    mapping = default_mapping("spotler")
    dumped = mapping.model_dump(exclude_none=True)
    assert dumped["external_id"] == "contact.ContactId"
    rebuilt = DestinationMapping.model_validate(dumped)
    assert rebuilt.model_dump() == mapping.model_dump()
    assert rebuilt.file is None  # built in code, not loaded from a file


def test_a_mailchimp_mapping_needs_no_spotler_concepts(tmp_path):
    raw = copy.deepcopy(SHIPPED_RAW)
    raw["destination"] = "mailchimp"
    raw["email"]["property"] = "email_address"
    raw["fields"] = [{"afas": "person.FirstName", "type": "text", "property": "FNAME"}]
    raw["permissions"] = [{"afas": "contact.PermissionNewsletter", "id": "a1b2c3d4e5"}]
    path = tmp_path / "mailchimp.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    mapping = load_mapping(path)
    assert mapping.permission_keys() == [("contact.PermissionNewsletter", "a1b2c3d4e5")]
    assert mapping.properties() == [("contact.MailWork", "email_address"), ("person.FirstName", "FNAME")]


# --- R5: one e-mail field ---------------------------------------------------------------------------


def test_r5_email_must_be_mail_work_or_mail_private(tmp_path):
    path, message = broken(tmp_path, lambda raw: raw["email"].update(afas="contact.Function"))
    assert_names(path, message, "email.afas (contact.Function -> email)", "R5")
    assert "MailWork" in message and "MailPrivate" in message


def test_r5_no_other_field_may_feed_the_email_property(tmp_path):
    def change(raw):
        raw["fields"][field_index(raw, "person.LastName")]["property"] = "email"

    path, message = broken(tmp_path, change)
    assert_names(path, message, f"fields[{field_index(SHIPPED_RAW, 'person.LastName')}].property", "R5")


def test_r5_a_second_email_field_is_refused(tmp_path):
    path, message = broken(tmp_path, lambda raw: raw["fields"].append(
        {"afas": "contact.MailPrivate", "type": "text", "property": "privateEmail"}))
    assert_names(path, message, f"fields[{len(SHIPPED_RAW['fields'])}].afas (contact.MailPrivate -> privateEmail)", "R5")


# --- R6: permissions ----------------------------------------------------------------------------------


def test_r6_duplicate_permission_bit_is_refused(tmp_path):
    path, message = broken(tmp_path, lambda raw: raw["permissions"][1].update(bit=1))
    assert_names(path, message, "permissions[1].bit (contact.PermissionEvents -> permission bit 1)", "R6")
    assert "permissions[0]" in message


def test_r6_spotler_permissions_are_bits_not_ids(tmp_path):
    def change(raw):
        del raw["permissions"][0]["bit"]
        raw["permissions"][0]["id"] = "newsletter"

    path, message = broken(tmp_path, change)
    assert_names(path, message, "permissions[0]", "R6")
    assert "bit:" in message


def test_m2_a_permission_needs_exactly_one_of_bit_and_id(tmp_path):
    path, message = broken(tmp_path, lambda raw: raw["permissions"][0].update(id="x"))
    assert_names(path, message, "permissions[0] (contact.PermissionNewsletter -> permission bit 1)", "M2")


def test_m2_a_permission_bit_is_a_positive_integer(tmp_path):
    path, message = broken(tmp_path, lambda raw: raw["permissions"][0].update(bit=0))
    assert_names(path, message, "permissions[0].bit", "M2")


# --- R7 / R8 / R9 -------------------------------------------------------------------------------------


def test_r7_blocked_is_the_contacts_own_flag(tmp_path):
    path, message = broken(tmp_path, lambda raw: raw.update(blocked="organisation.Blocked"))
    assert_names(path, message, "blocked", "R7")


def test_r8_filter_on_another_field_is_refused(tmp_path):
    path, message = broken(tmp_path, lambda raw: raw["source"]["filters"].append({"field": "Blocked", "equals": False}))
    assert_names(path, message, "source.filters[1].field", "R8")
    assert "ContactKind" in message and "IsDebtor" in message


def test_r8_contact_kind_filter_only_on_prs(tmp_path):
    path, message = broken(tmp_path, lambda raw: raw["source"]["filters"][0].update(equals="PER"))
    assert_names(path, message, "source.filters[0].equals", "R8")


def test_r8_debtor_filter_only_on_true(tmp_path):
    path, message = broken(tmp_path, lambda raw: raw["source"]["filters"].append({"field": "IsDebtor", "equals": "J"}))
    assert_names(path, message, "source.filters[1].equals", "R8")


def test_r8_a_filter_listed_twice_is_refused(tmp_path):
    path, message = broken(tmp_path, lambda raw: raw["source"]["filters"].append({"field": "ContactKind", "equals": "PRS"}))
    assert_names(path, message, "source.filters[1].field", "R8")


def test_r9_external_id_is_the_contact_id(tmp_path):
    path, message = broken(tmp_path, lambda raw: raw.update(external_id="contact.PersonId"))
    assert_names(path, message, "external_id (contact.PersonId -> externalId)", "R9")


def test_r9_source_is_the_contacts_connector_of_afas_sources(tmp_path):
    path, message = broken(tmp_path, lambda raw: raw["source"].update(connector="Profit_Contacts"))
    assert_names(path, message, "source.connector", "R9")
    assert "Sync_Contacts" in message and "afas_sources.yaml" in message


# --- R13: what flows back ----------------------------------------------------------------------------


def test_r13_table_link_never_flows_back(tmp_path):
    i = field_index(SHIPPED_RAW, "person.Gender")

    def change(raw):
        raw["fields"][i].update(direction="both", write_back={"connector": "KnPerson", "field": "ViGe"})

    path, message = broken(tmp_path, change)
    assert_names(path, message, f"fields[{i}].direction (person.Gender -> gender)", "R13")
    assert "table-link" in message


def test_r13_only_text_and_yes_no_flow_back(tmp_path):
    def change(raw):
        raw["fields"].append({"afas": "person.BirthDate", "type": "date", "property": "birthday", "direction": "both",
                              "write_back": {"connector": "KnPerson", "field": "DaBi"}})

    path, message = broken(tmp_path, change)
    assert_names(path, message, f"fields[{len(SHIPPED_RAW['fields'])}].type (person.BirthDate -> birthday)", "R13")


@pytest.mark.parametrize("column", ["organisation.Name", "organisation.City"])
def test_r13_protected_organisation_fields_never_flow_back(tmp_path, column):
    i = field_index(SHIPPED_RAW, column)

    def change(raw):
        raw["fields"][i].update(direction="both", write_back={"connector": "KnOrganisation", "field": "SeNm"})

    path, message = broken(tmp_path, change)
    assert_names(path, message, f"fields[{i}].direction ({column} -> ", "R13")
    assert "never written to AFAS" in message


@pytest.mark.parametrize("target", ["Nm", "Ad", "HmNr", "ZpCd", "Rs"])
def test_r13_protected_write_back_targets_are_refused(tmp_path, target):
    i = field_index(SHIPPED_RAW, "contact.Function")
    path, message = broken(tmp_path, lambda raw: raw["fields"][i]["write_back"].update(field=target))
    assert_names(path, message, f"fields[{i}].write_back.field (contact.Function -> function)", "R13")


def test_r13_protected_target_refused_for_bounce_write_back_too(tmp_path):
    path, message = broken(tmp_path, lambda raw: raw["bounce"]["type"]["write_back"].update(field="Rs"))
    assert_names(path, message, "bounce.type.write_back.field (contact.BounceType -> bounce type)", "R13")


def test_r13_direction_both_needs_write_back(tmp_path):
    i = field_index(SHIPPED_RAW, "contact.Function")
    path, message = broken(tmp_path, lambda raw: raw["fields"][i].pop("write_back"))
    assert_names(path, message, f"fields[{i}].write_back (contact.Function -> function)", "R13")
    assert "connector: KnContact" in message


def test_r13_write_back_needs_direction_both(tmp_path):
    i = field_index(SHIPPED_RAW, "contact.Function")
    path, message = broken(tmp_path, lambda raw: raw["fields"][i].pop("direction"))
    assert_names(path, message, f"fields[{i}].direction (contact.Function -> function)", "R13")


def test_r13_write_back_goes_through_the_entitys_own_connector(tmp_path):
    i = field_index(SHIPPED_RAW, "contact.Function")
    path, message = broken(tmp_path, lambda raw: raw["fields"][i]["write_back"].update(connector="KnPerson"))
    assert_names(path, message, f"fields[{i}].write_back.connector", "R13")
    assert "connector: KnContact" in message


# --- file rules M1..M4 --------------------------------------------------------------------------------


def test_m1_unknown_entity_is_refused(tmp_path):
    path, message = broken(tmp_path, lambda raw: raw["fields"][0].update(afas="persoon.FirstName"))
    assert_names(path, message, "fields[0].afas (persoon.FirstName -> firstName)", "M1")
    assert "contact, person, organisation" in message


@pytest.mark.parametrize("bad", ["FirstName", "person.", "person.First Name", 42])
def test_m1_malformed_reference_is_refused(tmp_path, bad):
    path, message = broken(tmp_path, lambda raw: raw["fields"][0].update(afas=bad))
    assert_names(path, message, "fields[0].afas", "M1")
    assert "<entity>.<Field>" in message


def test_m1_malformed_reference_outside_fields(tmp_path):
    path, message = broken(tmp_path, lambda raw: raw.update(blocked="Blocked"))
    assert_names(path, message, "blocked", "M1")


def test_m2_unknown_setting_is_refused(tmp_path):
    path, message = broken(tmp_path, lambda raw: raw["fields"][0].update(proprety="x"))
    assert_names(path, message, "fields[0].proprety (person.FirstName -> firstName)", "M2")
    assert "unknown setting" in message


def test_m2_missing_setting_is_named(tmp_path):
    path, message = broken(tmp_path, lambda raw: raw.pop("blocked"))
    assert_names(path, message, "blocked", "M2")
    assert "missing" in message


def test_m2_unknown_type_lists_the_choices(tmp_path):
    path, message = broken(tmp_path, lambda raw: raw["fields"][0].update(type="string"))
    assert_names(path, message, "fields[0].type (person.FirstName -> firstName)", "M2")
    assert "'text'" in message and "'table_link'" in message


def test_m2_filter_value_must_be_text_or_yes_no(tmp_path):
    path, message = broken(tmp_path, lambda raw: raw["source"]["filters"][0].update(equals=3))
    assert_names(path, message, "source.filters[0].equals", "M2")
    assert message.count("source.filters[0].equals") == 1  # union alternatives merged into one line


def test_m3_one_property_one_field(tmp_path):
    i = field_index(SHIPPED_RAW, "organisation.City")
    path, message = broken(tmp_path, lambda raw: raw["fields"][i].update(property="firstName"))
    assert_names(path, message, f"fields[{i}].property (organisation.City -> firstName)", "M3")
    assert "fields[0]" in message


def test_m4_one_write_back_per_afas_field(tmp_path):
    path, message = broken(tmp_path, lambda raw: raw["permissions"][1]["write_back"].update(
        field=raw["permissions"][0]["write_back"]["field"]))
    assert_names(path, message, "permissions[1].write_back.field", "M4")
    assert "permissions[0]" in message


def test_several_problems_are_reported_together(tmp_path):
    def change(raw):
        raw["external_id"] = "contact.PersonId"
        raw["source"]["filters"].append({"field": "Blocked", "equals": False})

    path, message = broken(tmp_path, change)
    assert message.startswith(f"{path}: 2 problems")
    assert_names(path, message, "external_id", "R9")
    assert_names(path, message, "source.filters[1].field", "R8")


def test_direct_construction_keeps_the_rules_too():
    raw = copy.deepcopy(SHIPPED_RAW)
    raw["external_id"] = "contact.PersonId"
    with pytest.raises(ValidationError, match="external_id .*R9"):
        DestinationMapping.model_validate(raw)


# --- the file itself ---------------------------------------------------------------------------------


def test_duplicate_yaml_key_is_refused(tmp_path):
    path = tmp_path / "spotler.yaml"
    path.write_text(SHIPPED.read_text(encoding="utf-8") + "\nblocked: contact.Blocked\n", encoding="utf-8")
    with pytest.raises(MappingError, match="'blocked' appears twice") as error:
        load_mapping(path)
    assert str(path) in str(error.value)


def test_bad_yaml_missing_file_and_non_mapping_are_clear(tmp_path):
    path = tmp_path / "spotler.yaml"
    path.write_text("fields: [unclosed", encoding="utf-8")
    with pytest.raises(MappingError, match="not valid YAML"):
        load_mapping(path)
    path.write_text("- just a list\n", encoding="utf-8")
    with pytest.raises(MappingError, match=r"<root>: M2: "):
        load_mapping(path)
    with pytest.raises(MappingError, match="file not found"):
        load_mapping(tmp_path / "nope.yaml")


def test_r9_uses_the_afas_sources_file_beside_the_mapping(tmp_path):
    (tmp_path / "afas_sources.yaml").write_text(
        "\n".join(f"{e}:\n  connector: My_{e}\n  key: Id\n  modified: [M]" for e in ("contacts", "persons", "organisations")),
        encoding="utf-8")
    path, message = broken(tmp_path, lambda raw: None)
    assert_names(path, message, "source.connector", "R9")
    assert "My_contacts" in message


# --- an audience of debtors (mappings/mailchimp_debtors.yaml) -------------------------------------------

DEBTORS = MAPPINGS_DIR / "mailchimp_debtors.yaml"
DEBTORS_RAW = yaml.safe_load(DEBTORS.read_text(encoding="utf-8"))


def broken_debtors(tmp_path: Path, change: Callable[[dict], None]) -> tuple[Path, str]:
    return broken(tmp_path, change, DEBTORS)


def test_shipped_debtor_mapping_reads_debtors_and_their_delivery_address():
    mapping = load_mapping(DEBTORS)
    assert mapping.base == "debtor" and mapping.source.connector == "Profit_Debtor_App"
    assert mapping.external_id.column == "debtor.DebtorId" and mapping.blocked.column == "debtor.Blocked"
    columns = mapping.columns()
    assert list(columns) == ["debtor", "delivery_address"]
    assert columns["debtor"][:2] == ["DebtorId", "DeliveryAddressId"] and columns["delivery_address"][0] == "Adres_ID"
    assert "A_Toev_Huisnr." in columns["delivery_address"]  # AFAS's row key with a dot in it
    assert mapping.write_backs() == [] and mapping.permissions == ()


def test_r9_a_debtor_audience_is_keyed_by_the_debtor_id(tmp_path):
    path, message = broken_debtors(tmp_path, lambda raw: raw.update(external_id="debtor.PersonId"))
    assert_names(path, message, "external_id (debtor.PersonId -> externalId)", "R9")
    assert "debtor.DebtorId" in message


def test_r9_a_debtor_audience_reads_the_debtors_connector_of_afas_sources(tmp_path):
    path, message = broken_debtors(tmp_path, lambda raw: raw["source"].update(connector="Profit_Debtor"))
    assert_names(path, message, "source.connector", "R9")
    assert "Profit_Debtor_App" in message


def test_m1_a_debtor_audience_maps_no_contact_or_person_field(tmp_path):
    path, message = broken_debtors(
        tmp_path, lambda raw: raw["fields"].append({"afas": "person.FirstName", "type": "text", "property": "FIRST"}))
    i = len(DEBTORS_RAW["fields"])
    assert_names(path, message, f"fields[{i}].afas", "M1")
    assert "debtor, delivery_address" in message


def test_r13_nothing_of_a_debtor_is_written_back(tmp_path):
    i = field_index(DEBTORS_RAW, "debtor.DebtorName")
    path, message = broken_debtors(tmp_path, lambda raw: raw["fields"][i].update(
        direction="both", write_back={"connector": "KnOrganisation", "field": "Nm2"}))
    assert_names(path, message, f"fields[{i}].write_back", "R13")
    assert "KnSalesRelation" in message


def test_r8_a_debtor_audience_takes_no_filters(tmp_path):
    path, message = broken_debtors(
        tmp_path, lambda raw: raw["source"].update(filters=[{"field": "IsDebtor", "equals": True}]))
    assert_names(path, message, "source.filters", "R8")


def test_r5_a_debtor_audience_mails_the_debtor_address(tmp_path):
    path, message = broken_debtors(tmp_path, lambda raw: raw["email"].update(afas="delivery_address.Mail"))
    assert_names(path, message, "email.afas", "R5")
    assert "debtor.Email" in message


def test_r17_a_debtor_audience_has_no_mailing_history(tmp_path):
    path, message = broken_debtors(tmp_path, lambda raw: raw.update(mailing_history={
        "enabled_from": "2026-11-01T00:00:00Z", "subject_type": 3}))
    assert_names(path, message, "mailing_history", "R17")


def test_r17_mailchimp_has_no_trend_reports(tmp_path):
    path, message = broken(tmp_path, lambda raw: raw["mailing_history"].update(mailings="trend_reports"),
                           MAPPINGS_DIR / "mailchimp.yaml")
    assert_names(path, message, "mailing_history.mailings", "R17")
    assert "mailings: all" in message
