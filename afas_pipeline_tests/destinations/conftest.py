"""The rules every destination keeps, tested once per destination: a world for each (`afas_pipeline_tests.world`)
and a probe that looks at and acts in that destination the way its recipients and users do."""

from __future__ import annotations

from dataclasses import dataclass

import httpx
import pytest

from afas_pipeline.mailchimp.client import subscriber_hash
from afas_pipeline_tests.world import WORLD_CONTACTS, SyncWorld


@dataclass
class SpotlerProbe:
    """Spotler contacts by externalId; newsletter permission bit 1; the job title in property `function`."""

    world: SyncWorld

    def _admin(self, method: str, path: str, **kwargs):
        return self.world.admin_call(self.world.sandbox.spotler_admin_url, method, path, **kwargs)

    def records(self) -> dict[str, dict]:
        return {str(c["externalId"]): c for c in self._admin("GET", "/contacts")}

    def subscribed(self, record: dict) -> bool:
        return any(p["bit"] == 1 and p["enabled"] for p in record["properties"].get("permissions", []))

    def job_title(self, record: dict) -> str | None:
        return record["properties"].get("function")

    def opted_out(self, record: dict) -> bool:
        return any(p["bit"] == 1 and not p["enabled"] for p in record["properties"].get("permissions", []))

    def opt_out(self, external_id: str, at: str | None = None) -> None:
        self._admin("POST", f"/recipients/{external_id}/unsubscribe", json={"bit": 1, **({"at": at} if at else {})})

    def writes(self) -> int:
        requests = self._admin("GET", "/stats")["requests"]
        return sum(n for route, n in requests.items() if route.split(" ")[0] in ("POST", "PUT"))

    def reset_writes(self) -> None:
        self._admin("POST", "/stats/reset")

    def set_clock(self, offset_s: float) -> None:
        """Moves the destination's clock (its stamps and its `Date`) `offset_s` from the real time."""
        self._admin("PUT", "/clock", json={"offset_s": offset_s})


@dataclass
class MailchimpProbe:
    """Mailchimp members by their AFASID merge field; the audience status; the job title in JOBTITLE."""

    world: SyncWorld

    def _admin(self, method: str, path: str, **kwargs):
        return self.world.admin_call(self.world.sandbox.mailchimp_admin_url, method, path, **kwargs)

    def records(self) -> dict[str, dict]:
        return {str(m["merge_fields"].get("AFASID")): m for m in self._admin("GET", "/members")
                if m["merge_fields"].get("AFASID")}

    def subscribed(self, record: dict) -> bool:
        return record["status"] == "subscribed"

    def job_title(self, record: dict) -> str | None:
        return record["merge_fields"].get("JOBTITLE") or None

    def opted_out(self, record: dict) -> bool:
        return record["status"] == "unsubscribed"

    def opt_out(self, external_id: str, at: str | None = None) -> None:
        member = self.records()[external_id]
        self._admin("POST", f"/members/{subscriber_hash(member['email_address'])}/unsubscribe",
                    json={"at": at} if at else {})

    def writes(self) -> int:
        requests = self._admin("GET", "/stats")["requests"]
        return sum(n for route, n in requests.items() if route.split(" ")[0] in ("POST", "PUT", "PATCH"))

    def reset_writes(self) -> None:
        self._admin("POST", "/stats/reset")

    def set_clock(self, offset_s: float) -> None:
        """Moves the destination's clock (its stamps and its `Date`) `offset_s` from the real time."""
        self._admin("PUT", "/clock", json={"offset_s": offset_s})


PROBES = {"spotler": SpotlerProbe, "mailchimp": MailchimpProbe}


@pytest.fixture(params=sorted(PROBES))
def destination(request, sandbox, afas_sandbox_clean, spotler_sandbox_clean, mailchimp_sandbox_clean, tmp_path):
    """(world, probe) of one destination, from a 300-contact AFAS sandbox and an empty destination."""
    httpx.post(f"{sandbox.afas_admin_url}/dataset/generate", json={"contacts": WORLD_CONTACTS, "seed": 7},
               timeout=60).raise_for_status()
    world = SyncWorld(sandbox, tmp_path, destination=request.param)
    return world, PROBES[request.param](world)
