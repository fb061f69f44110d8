"""The Spotler chain with its assets on object storage (`AFAS_PIPELINE_STORAGE=s3://...`, a real S3-compatible server
on localhost): a full sync and one delta window store and read every asset through S3, and the retention job with
retention 0 leaves no object holding a seeded e-mail address or name, while the keys-and-hashes assets stay."""

import io

import dagster as dg
import pandas as pd

from afas_pipeline.definitions import assets as ALL_ASSETS
from afas_pipeline.retention import build_retention
from afas_pipeline.sync.state import SyncStateResource
from afas_pipeline_tests.retention.test_retention import _hits, _seeded

WINDOW, IN_WINDOW = "2026-11-16-10:00", "2026-11-16T10:05:00Z"


def test_a_delta_window_on_s3_then_retention_zero_leaves_no_personal_data_in_the_bucket(
        world, s3_bucket, s3_server, monkeypatch):
    world.storage = f"s3://{s3_bucket}/assets"
    world.sync()
    (contact,) = world.pick(1, ContactKind="PRS")
    world.afas_edit("contacts", contact["ContactId"], at=IN_WINDOW, Function="Inkoper S3")

    result = world.delta(WINDOW)

    external_id = str(contact["ContactId"])
    assert world.spotler_contact(external_id)["properties"]["function"] == "Inkoper S3"
    assert world.metadata(result, "spotler_sync_delta")["contacts_sent"] == 1
    assert world.metadata(result, "spotler_sync_delta")["path"].startswith(f"s3://{s3_bucket}/assets/")
    objects = s3_server.objects(s3_bucket)
    sent = pd.read_parquet(io.BytesIO(objects[f"assets/spotler_sync_delta/{WINDOW}.parquet"]))
    assert list(sent.loc[sent["status"] == "ok", "external_id"]) == [external_id]
    seeded = _seeded(world.sandbox.afas_admin_url)
    assert _hits(b"".join(objects.values()), seeded)  # the audiences and AFAS reads hold personal data

    [retention, *_] = build_retention(ALL_ASSETS)
    monkeypatch.setenv("AFAS_PIPELINE_STORAGE", world.storage)

    def run_retention(days: str) -> dict:
        monkeypatch.setenv("AFAS_PIPELINE_RETENTION_DAYS", days)
        done = dg.materialize([retention], instance=world.instance,
                              resources={"sync_state": SyncStateResource(path=str(world.state_path))})
        return world.metadata(done, "personal_data_retention")

    assert run_retention("7")["deleted_files"] == 0  # every object is minutes old
    deleted = run_retention("0")
    left = s3_server.objects(s3_bucket)
    assert deleted["deleted_files"] == len(objects) - len(left) > 5
    assert deleted["deleted_bytes"] == sum(len(v) for k, v in objects.items() if k not in left)
    assert deleted["deleted:spotler_audience_delta"]["partitions"] == 1
    assert {k: _hits(v, seeded) for k, v in left.items() if _hits(v, seeded)} == {}
    assert f"assets/spotler_sync_delta/{WINDOW}.parquet" in left  # keys and hashes stay
