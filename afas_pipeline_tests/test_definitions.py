"""The whole definitions graph, as an engineer sees it in the Dagster UI."""

import dagster as dg
import pytest

from afas_pipeline.afas.partitions import delta_partitions, full_partitions
from afas_pipeline.defs import DESTINATIONS, EMAIL_DESTINATIONS
from afas_pipeline.definitions import defs

ENTITIES = ("contacts", "persons", "organisations")


def test_every_destination_is_declared():
    assert DESTINATIONS == ("mailchimp", "spotler", "xelion")
    assert EMAIL_DESTINATIONS == ("mailchimp", "spotler")


def _delta_chain(d: str) -> set[str]:
    names = {f"{d}_audience_delta", f"{d}_sync_plan_delta", f"{d}_sync_delta", f"{d}_rejected",
             f"{d}_optout_feedback", f"{d}_bounce_feedback", f"{d}_afas_write_back", f"{d}_mailing_history"}
    return names


def _graph():
    return defs.resolve_asset_graph()


def test_definitions_load_and_validate():
    dg.Definitions.validate_loadable(defs)


def test_afas_group_has_a_full_and_a_delta_asset_per_entity():
    graph = _graph()
    keys = {key.to_user_string() for key in graph.get_all_asset_keys()}
    expected = {f"afas_{e}" for e in ENTITIES} | {f"afas_{e}_changes" for e in ENTITIES}
    assert expected <= keys
    for name in expected:
        node = graph.get(dg.AssetKey(name))
        assert node.group_name == "afas"
        assert node.owners == ["team:data-engineering"]
        assert "afas" in node.kinds
        assert node.description


def test_r1_delta_is_15_minutes_and_r2_full_is_6_hours_in_utc():
    graph = _graph()
    for entity in ENTITIES:
        assert graph.get(dg.AssetKey(f"afas_{entity}_changes")).partitions_def == delta_partitions
        assert graph.get(dg.AssetKey(f"afas_{entity}")).partitions_def == full_partitions
    assert delta_partitions.cron_schedule == "*/15 * * * *"
    assert full_partitions.cron_schedule == "0 */6 * * *"
    assert delta_partitions.timezone == full_partitions.timezone == "UTC"


def test_a_day_of_deltas_backfills_in_one_run():
    graph = _graph()
    for entity in ENTITIES:
        policy = graph.get(dg.AssetKey(f"afas_{entity}_changes")).backfill_policy
        assert policy is not None and policy.max_partitions_per_run == 96
        full_policy = graph.get(dg.AssetKey(f"afas_{entity}")).backfill_policy
        assert full_policy is not None and full_policy.max_partitions_per_run is None


def test_checks_are_declared_on_the_partitioned_assets():
    graph = _graph()
    checks = {(k.asset_key.to_user_string(), k.name) for k in graph.asset_check_keys}
    for entity in ENTITIES:
        for name in (f"afas_{entity}", f"afas_{entity}_changes"):
            assert (name, "required_ids_present") in checks
            assert (name, "unique_keys") in checks
    assert ("afas_contacts", "contact_kind_known") in checks
    assert ("afas_contacts_changes", "contact_kind_known") in checks
    spec = graph.get_check_spec(dg.AssetCheckKey(dg.AssetKey("afas_contacts_changes"), "required_ids_present"))
    assert spec.blocking


def test_assets_link_to_their_source_code():
    node = _graph().get(dg.AssetKey("afas_contacts_changes"))
    refs = node.metadata["dagster/code_references"].code_references
    assert any(ref.file_path.endswith("afas/assets.py") for ref in refs)


def test_jobs_select_one_cadence_each():
    delta = defs.resolve_job_def("afas_delta_job")
    full = defs.resolve_job_def("afas_full_job")
    assert delta.partitions_def == delta_partitions
    assert full.partitions_def == full_partitions
    delta_keys = {k.to_user_string() for k in delta.asset_layer.executable_asset_keys}
    full_keys = {k.to_user_string() for k in full.asset_layer.executable_asset_keys}
    xelion = {"xelion_phone_index"}
    assert delta_keys == {f"afas_{e}_changes" for e in ENTITIES} | set().union(*map(_delta_chain, EMAIL_DESTINATIONS)) | {
        "xelion_address_book_delta", "xelion_call_reports", *xelion}
    assert full_keys == {f"afas_{e}" for e in ENTITIES} | {
        f"{d}_{step}" for d in EMAIL_DESTINATIONS for step in ("audience", "sync_plan", "sync", "rejected")} | {
        "xelion_address_book", *xelion}
    assert delta.tags["afas_pipeline/cadence"] == "delta"


@pytest.mark.parametrize("d", EMAIL_DESTINATIONS)
def test_each_destination_chain_hangs_off_the_afas_reads_of_its_cadence(d):
    graph = _graph()

    def parents(name):
        return {k.to_user_string() for k in graph.get(dg.AssetKey(name)).parent_keys}

    assert parents(f"{d}_audience") == {"afas_contacts", "afas_persons", "afas_organisations"}
    assert parents(f"{d}_audience_delta") == {f"afas_{e}_changes" for e in ENTITIES}
    assert parents(f"{d}_sync_plan") == {f"{d}_audience"}
    assert parents(f"{d}_sync") == {f"{d}_audience", f"{d}_sync_plan"}
    assert parents(f"{d}_rejected") == {f"{d}_sync", f"{d}_sync_delta"}
    checks = {(k.asset_key.to_user_string(), k.name) for k in graph.asset_check_keys}
    for suffix in ("", "_delta"):
        assert (f"{d}_audience{suffix}", "r3_every_member_has_a_valid_email") in checks
        assert (f"{d}_audience{suffix}", "r4_only_persons_at_organisations") in checks
        assert (f"{d}_audience{suffix}", "c2_one_record_per_contact") in checks
        assert (f"{d}_sync_plan{suffix}", "c1_no_optout_undone") in checks
        spec = graph.get_check_spec(dg.AssetCheckKey(dg.AssetKey(f"{d}_sync_plan{suffix}"), "c1_no_optout_undone"))
        assert spec.blocking


@pytest.mark.parametrize("d", EMAIL_DESTINATIONS)
def test_the_way_back_hangs_off_each_destination_with_blocking_checks_in_front_of_afas(d):
    graph = _graph()
    write_back = dg.AssetKey(f"{d}_afas_write_back")
    assert {k.to_user_string() for k in graph.get(write_back).parent_keys} == {
        f"{d}_optout_feedback", f"{d}_bounce_feedback"}
    # One graph AFAS -> destination -> AFAS: the way back runs after its window's sync.
    for name in (f"{d}_optout_feedback", f"{d}_bounce_feedback", f"{d}_mailing_history"):
        assert {k.to_user_string() for k in graph.get(dg.AssetKey(name)).parent_keys} == {f"{d}_sync_delta"}
    upstream = {k.to_user_string() for k in graph.upstream_key_iterator(write_back)}
    assert {"afas_contacts_changes", f"{d}_sync_delta", f"{d}_bounce_feedback"} <= upstream
    for name in (f"{d}_optout_feedback", f"{d}_bounce_feedback", f"{d}_afas_write_back"):
        node = graph.get(dg.AssetKey(name))
        assert node.partitions_def == delta_partitions
        assert node.group_name == d
        assert node.backfill_policy is not None and node.backfill_policy.max_partitions_per_run == 96
    for check in ("no_protected_field", "no_create", "only_mapped_fields"):
        spec = graph.get_check_spec(dg.AssetCheckKey(write_back, check))
        assert spec.blocking


def test_runs_execute_in_process():
    assert defs.executor is dg.in_process_executor


def test_the_code_location_never_imports_the_sandbox():
    """The sandbox is a package of its own (an extra): loading the pipeline must not pull it in."""
    import subprocess
    import sys

    probe = "import sys, afas_pipeline.definitions, afas_pipeline.cli; print(sorted(m for m in sys.modules if m.startswith('afas_sandbox')))"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True)
    assert result.stdout.strip() == "[]"


def test_the_sandbox_credentials_the_pipeline_uses_are_the_sandbox_s_own():
    from afas_pipeline import resources
    from afas_sandbox import server

    assert (resources.SANDBOX_AFAS_TOKEN, resources.SANDBOX_SPOTLER_KEY, resources.SANDBOX_SPOTLER_SECRET) == (
        server.SANDBOX_AFAS_TOKEN, server.SANDBOX_SPOTLER_KEY, server.SANDBOX_SPOTLER_SECRET)


def test_dg_lists_and_checks_the_definitions_in_this_project():
    """`dg list defs` and `dg check defs` work in a fresh clone ([tool.dg] in pyproject.toml)."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    dg_cli = str(Path(sys.executable).with_name("dg"))
    root = Path(__file__).resolve().parents[1]
    checked = subprocess.run([dg_cli, "check", "defs"], cwd=root, capture_output=True, text=True, timeout=300)
    assert checked.returncode == 0, checked.stderr[-2000:]
    assert "All definitions loaded successfully" in checked.stdout + checked.stderr
    listed = subprocess.run([dg_cli, "list", "defs", "--json"], cwd=root, capture_output=True, text=True, timeout=300)
    assert listed.returncode == 0, listed.stderr[-2000:]
    # dg sees the project's own graph: every asset and check, each job and schedule.
    found = json.loads(listed.stdout)
    graph = _graph()
    assert {a["asset_key"] for a in found["assets"]} == {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert len(found["asset_checks"]) == len(graph.asset_check_keys)
    assert {j["name"] for j in found["jobs"]} == {"afas_delta_job", "afas_full_job", "personal_data_retention_job",
                                                  "erasure_job"}
    assert {s["name"] for s in found["schedules"]} == {"afas_delta_job_schedule", "afas_full_job_schedule",
                                                       "personal_data_retention_job_schedule", "erasure_job_schedule"}


@pytest.mark.parametrize("d", EMAIL_DESTINATIONS)
def test_rejected_records_follow_the_latest_window_of_each_sync_not_every_window(d):
    """Depending on every 15-minute window since the start makes Dagster list them all on each run (seconds of
    CPU that grow with time); the latest window carries the lineage just as well."""
    rejected = defs.resolve_assets_def(f"{d}_rejected")
    parents = {f"{d}_sync", f"{d}_sync_delta"}
    assert {k.to_user_string() for k in rejected.dependency_keys} == parents
    for parent in parents:
        assert isinstance(rejected.get_partition_mapping(dg.AssetKey(parent)), dg.LastPartitionMapping)
