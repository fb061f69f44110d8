"""The audience step reads only the AFAS fields it uses: the snapshots hold every field of their GetConnector, the
step receives the mapping's fields, the modified dates and the erasure flag, and makes the same rows as an audience
built from the whole snapshots (issue 13: a million contacts' unused fields are never held)."""

from __future__ import annotations

import dagster as dg
import pandas as pd

from afas_pipeline.afas.sources import default_sources
from afas_pipeline.lib.parquet_io import ParquetIOManager
from afas_pipeline.mapping.load import default_mapping
from afas_pipeline.sync.audience import audience_columns, audience_members, build_audience, field_hash_column
from afas_pipeline.sync.erasure import exclude_erased, marked
from afas_pipeline.sync.plan import STATE_COLUMNS, plan_sync, planned_columns
from afas_pipeline_tests.spotler.conftest import FULL_PARTITION

#: What each load of the IO manager below returned, by input asset key.
LOADED: dict[str, list[str]] = {}


class _Watched(dg.IOManager):
    """The project's parquet store, noting the columns of every frame it loads."""

    def __init__(self, store: dg.IOManager):
        self.store = store

    def handle_output(self, context: dg.OutputContext, obj) -> None:
        self.store.handle_output(context, obj)

    def load_input(self, context: dg.InputContext) -> pd.DataFrame:
        frame = self.store.load_input(context)
        LOADED[context.asset_key.to_user_string()] = list(frame.columns)
        return frame


class WatchedParquet(ParquetIOManager):
    def create_io_manager(self, context: dg.InitResourceContext) -> _Watched:
        return _Watched(super().create_io_manager(context))


def test_the_audience_receives_only_the_fields_it_uses_and_makes_the_same_rows(world):
    LOADED.clear()
    reads = ["afas_contacts", "afas_persons", "afas_organisations"]
    resources = {**world.resources(), "io_manager": WatchedParquet(base_dir=str(world.storage))}
    assert dg.materialize(world._chain(), selection=[*reads, "spotler_audience"], partition_key=FULL_PARTITION,
                          resources=resources, instance=world.instance).success

    mapping, sources = default_mapping("spotler"), default_sources()
    asked = audience_columns(mapping, sources, delta=False)
    whole = {name: world.stored(name) for name in reads}
    for entity, name in zip(["contact", "person", "organisation"], reads):
        assert LOADED[name] == [c for c in whole[name].columns if c in asked[entity]]
    # The snapshots hold fields no rule or mapped property uses; the step never received them.
    unused = {"afas_contacts": {"MailPrivate", "Phone", "CreateDate"}, "afas_persons": {"BirthDate", "MailWork"},
              "afas_organisations": {"ChamberOfCommerce", "Street", "Phone"}}
    for name, fields in unused.items():
        assert fields <= set(whole[name].columns) and not fields & set(LOADED[name])

    contacts = whole["afas_contacts"]
    expected = build_audience(contacts, {"person": whole["afas_persons"], "organisation": whole["afas_organisations"]},
                              mapping, modified=sources.contacts.modified)
    expected = exclude_erased(expected, "spotler", set(),
                              marked(contacts, sources.contacts.erase_flag, sources.contacts.key))
    assert len(expected.members) > 100
    pd.testing.assert_frame_equal(world.stored("spotler_audience"), expected.rows)


def test_the_plan_step_receives_the_audience_without_the_values_sent_and_makes_the_same_plan(world):
    LOADED.clear()
    resources = {**world.resources(), "io_manager": WatchedParquet(base_dir=str(world.storage))}
    assert dg.materialize(world._chain(), selection=["afas_contacts", "afas_persons", "afas_organisations",
                                                     "spotler_audience", "spotler_sync_plan"],
                          partition_key=FULL_PARTITION, resources=resources, instance=world.instance).success

    mapping = default_mapping("spotler")
    keys, two_way = [key for _, key in mapping.permission_keys()], [name for name, _ in mapping.two_way_fields()]
    audience = world.stored("spotler_audience")
    assert LOADED["spotler_audience"] == [c for c in audience.columns if c in planned_columns(keys, two_way)]
    # Personal data stays out of the plan step: no address, no mapped value (the plan compares their hashes).
    assert {"email", "prop:firstName", "prop:lastName"} <= set(audience.columns)
    assert not [c for c in LOADED["spotler_audience"] if c == "email" or c.startswith("prop:")]
    assert two_way and all(field_hash_column(name) in LOADED["spotler_audience"] for name in two_way)
    # The plan made from those columns is the one every column makes (a first sync: no state, no opt-outs).
    nothing = world.state().records("spotler", parsed=False, columns=STATE_COLUMNS)
    expected = plan_sync(audience_members(audience), nothing, world.state().optouts("spotler"), keys, two_way=two_way)
    assert len(expected) > 100 and set(expected["action"]) == {"create"}
    pd.testing.assert_frame_equal(world.stored("spotler_sync_plan"), expected)
