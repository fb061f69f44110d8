"""The call log (reference §C4): CallLogs newest first with oid cursors, filters, participants, the note in
`contents`, and recordings as real MP3 files (404/10100 without one)."""

from __future__ import annotations

import io

import httpx
import pytest
from mutagen.mp3 import MP3

from afas_pipeline_tests.sandbox.xelion.conftest import create, place_call, refused


def _oids(page: dict) -> list[str]:
    return [item["object"]["oid"] for item in page["data"]]


def test_a_placed_call_is_a_call_log_with_participants_and_its_note(xelion: httpx.Client,
                                                                  xelion_admin: httpx.Client):
    person = create(xelion, objectType="Person", givenName="Anna", familyName="de Vries",
                    telecomAddresses=[{"addressType": "Mobile", "address": "06 12345678"}])
    placed = place_call(xelion_admin, number="+31 (0)6 1234 5678", duration_s=95, note="Wil een offerte",
                        subject="Offerte", at="2026-10-25T00:05:00Z")
    call = xelion.get(f"communications/{placed['oid']}").json()
    log = call["object"]
    assert (log["objectType"], log["incoming"], log["durationSec"], log["status"]) == ("CallLog", True, 95, "answered")
    assert (log["contents"], log["subject"], log["phone"]) == ("Wil een offerte", "Offerte", "+31612345678")
    assert (log["date"], log["callEndTime"]) == ("2026-10-25 02:05:00", "2026-10-25 02:06:35")  # Amsterdam, CEST
    caller, callee = log["participants"]
    assert (caller["role"], caller["address"], caller["addressable"]["oid"]) == ("rtFrom", "+31612345678",
                                                                              person["oid"])
    assert callee["role"] == "rtTo" and callee["address"] != caller["address"]
    assert not any(link["rel"] == "audio" for link in call["links"])
    assert xelion.get(f"communications/{log['callId']}").json()["object"]["oid"] == log["oid"]

    out = place_call(xelion_admin, number="0201234567", direction="outgoing", answered=False)
    assert (out["incoming"], out["durationSec"], out["status"], out["contents"]) == (False, 0, "missed", None)
    assert out["participants"][1]["role"] == "rtTo" and out["participants"][1]["address"] == "+31201234567"
    assert xelion.get(f"communications/caller_{out['callId']}").json()["object"]["oid"] == out["oid"]
    refused(xelion.get(f"communications/caller_{log['callId']}"), 404, 10100)  # we did not start that one


def test_communications_are_newest_first_and_page_by_oid_cursor(xelion: httpx.Client,
                                                                xelion_admin: httpx.Client):
    made = [place_call(xelion_admin, number=f"010-12345{i:02d}", answered=i % 2 == 0)["oid"] for i in range(5)]
    first = xelion.get("communications", params={"limit": 2}).json()
    assert _oids(first) == made[:2:-1] == [made[4], made[3]]
    second = xelion.get("communications", params={"limit": 2, "after": first["meta"]["paging"]["nextId"]}).json()
    third = xelion.get("communications", params={"limit": 2, "after": second["meta"]["paging"]["nextId"]}).json()
    assert _oids(second) + _oids(third) == [made[2], made[1], made[0]]
    assert not [link for link in third["meta"]["links"] if link["rel"] == "next"]
    empty = xelion.get("communications", params={"after": made[0]}).json()
    assert empty["data"] == [] and empty["meta"]["paging"] == {}

    newer = place_call(xelion_admin, number="0101234599")["oid"]  # polling: what came after the last oid seen
    polled = xelion.get("communications", params={"order": "ascending", "after": made[4]}).json()
    assert _oids(polled) == [newer]
    assert _oids(xelion.get("communications", params={"before": made[2]}).json()) == [newer, made[4], made[3]]


def test_communication_filters(xelion: httpx.Client, xelion_admin: httpx.Client):
    org = create(xelion, objectType="Organisation", name="Garage Snel",
                 telecomAddresses=[{"addressType": "Telephone", "address": "0301234567"}])
    answered = place_call(xelion_admin, number="0301234567", note="APK afspraak")["oid"]
    missed = place_call(xelion_admin, number="0301234567", answered=False)["oid"]
    outgoing = place_call(xelion_admin, number="0401234567", direction="outgoing")["oid"]
    voicemail = place_call(xelion_admin, number="0501234567", answered=False, voicemail=True)["oid"]

    def oids(**params):
        response = xelion.get("communications", params=params)
        assert response.status_code == 200, response.text
        return _oids(response.json())

    assert oids(where="incoming=false") == [outgoing]
    assert oids(where="voicemail=true") == [voicemail]
    assert oids(only_missed_calls="true") == [voicemail, missed]
    assert oids(**{"with": org["oid"]}) == [missed, answered]
    assert oids(where="search=apk") == [answered]
    assert oids(where=["incoming=true", "obj_type=CallLog"]) == [voicemail, missed, answered]
    refused(xelion.get("communications", params={"where": "incoming=maybe"}), 400, 10202)
    refused(xelion.get("communications", params={"order": "sideways"}), 400, 10202)


@pytest.mark.parametrize("seconds", [1, 95])
def test_a_recording_is_a_valid_mp3_of_the_calls_length(xelion: httpx.Client, xelion_admin: httpx.Client, seconds):
    call = place_call(xelion_admin, number="0612345678", duration_s=seconds, recording=True)
    assert call["recording"] is True
    links = xelion.get(f"communications/{call['oid']}").json()["links"]
    audio_link = next(link for link in links if link["rel"] == "audio")
    audio = xelion.get(audio_link["href"])
    assert audio.status_code == 200 and audio.headers["content-type"] == "audio/x-mp3"
    data = audio.content
    header = int.from_bytes(data[:4], "big")
    assert header >> 21 == 0x7FF, "frame sync"
    assert (header >> 19 & 0b11, header >> 17 & 0b11) == (0b11, 0b01), "MPEG-1 Layer III"
    info = MP3(io.BytesIO(data)).info
    assert (info.version, info.layer, info.bitrate, info.sample_rate, info.channels) == (1, 3, 32000, 32000, 1)
    assert seconds <= info.length < seconds + 0.05


@pytest.mark.parametrize("call", [dict(answered=False), dict(answered=True), dict(direction="outgoing")])
def test_a_call_without_recording_has_no_audio(xelion: httpx.Client, xelion_admin: httpx.Client, call):
    placed = place_call(xelion_admin, number="0612345678", **call)
    refused(xelion.get(f"communications/{placed['oid']}/audio"), 404, 10100)
    refused(xelion.get("communications/123456/audio"), 404, 10100)


def test_a_voicemail_has_a_recording(xelion: httpx.Client, xelion_admin: httpx.Client):
    placed = place_call(xelion_admin, number="0612345678", answered=False, voicemail=True, recording=True,
                        duration_s=20)
    assert placed["durationSec"] == 0
    audio = xelion.get(f"communications/{placed['oid']}/audio")
    assert audio.status_code == 200 and 20 <= MP3(io.BytesIO(audio.content)).info.length < 20.05


@pytest.mark.parametrize("body", [
    {},
    {"number": "geen nummer"},
    {"number": "0612345678", "direction": "sideways"},
    {"number": "0612345678", "answered": False, "recording": True},
    {"number": "0612345678", "voicemail": True},
    {"number": "0612345678", "direction": "outgoing", "answered": False, "voicemail": True},
    {"number": "0612345678", "duration_s": -1},
    {"number": "0612345678", "note": 7},
    {"number": "0612345678", "at": "gisteren"},
])
def test_a_call_the_phone_system_could_not_log_is_refused_by_the_admin(xelion_admin: httpx.Client, body):
    response = xelion_admin.post("calls", json=body)
    assert response.status_code == 400, response.text
    assert response.json()["error"]
    assert xelion_admin.get("calls").json() == []
