"""The Mailchimp sandbox fixtures of `afas_pipeline_tests.sandbox.mailchimp` (the session sandbox with its Mailchimp
account reset around each test), shared with this folder, and the Mailchimp world: the chain to Mailchimp through
Dagster (`afas_pipeline_tests.world`), and Mailchimp as its members and users see it."""

from __future__ import annotations

from dataclasses import dataclass

import httpx
import pytest

from afas_pipeline_tests.sandbox.mailchimp.conftest import (
    mailchimp,
    mailchimp_sandbox_clean,
)
from afas_pipeline_tests.world import FULL_PARTITION, WORLD_CONTACTS, SyncWorld

__all__ = ["FULL_PARTITION", "MailchimpWorld", "mailchimp", "mailchimp_sandbox_clean", "mc_world"]


@dataclass
class MailchimpWorld(SyncWorld):
    """The Mailchimp chain, and Mailchimp as its members and users see it."""

    destination: str = "mailchimp"

    def pick(self, n: int = 1, *, in_mailchimp: bool | None = True, **conditions) -> list[dict]:
        """The first `n` AFAS contacts matching conditions (field -> value, or a callable); by default only
        contacts the last sync put in Mailchimp (members carrying their ContactId in AFASID)."""
        present = set(self.members()) if in_mailchimp is not None else None
        return self.pick_among(n, present, in_mailchimp, **conditions)

    # -- Mailchimp, as a member or a Mailchimp user would --

    def mc(self, method: str, path: str, **kwargs):
        return self.admin_call(self.sandbox.mailchimp_admin_url, method, path, **kwargs)

    def all_members(self) -> list[dict]:
        """Every member of the audience (archived too), in their REST form."""
        return self.mc("GET", "/members")

    def members(self) -> dict[str, dict]:
        """The members by AFAS ContactId (merge field AFASID); members without one are left out."""
        return {str(m["merge_fields"].get("AFASID")): m for m in self.all_members()
                if str((m.get("merge_fields") or {}).get("AFASID") or "").strip()}

    def member(self, external_id) -> dict | None:
        return self.members().get(str(external_id))

    def act(self, external_id, action: str, **body) -> dict:
        """A member's act (unsubscribe, clean, profile, upemail, ...) on the member of an AFAS contact."""
        member = self.member(external_id)
        assert member is not None, f"no member for AFAS contact {external_id}"
        return self.mc("POST", f"/members/{member['id']}/{action}", json=body)

    def unsubscribe(self, external_id, at: str | None = None) -> dict:
        return self.act(external_id, "unsubscribe", **({"at": at} if at else {}))

    def clean(self, external_id, at: str | None = None) -> dict:
        return self.act(external_id, "clean", **({"at": at} if at else {}))

    def profile(self, external_id, at: str | None = None, **merge_fields) -> dict:
        return self.act(external_id, "profile", merge_fields=merge_fields, **({"at": at} if at else {}))

    def upemail(self, external_id, new_email: str, at: str | None = None) -> dict:
        return self.act(external_id, "upemail", new_email=new_email, **({"at": at} if at else {}))

    def delete_permanent(self, external_id) -> None:
        """A Mailchimp user erases the member for good (REST API, the sandbox key): the address cannot come back."""
        member = self.member(external_id)
        assert member is not None, f"no member for AFAS contact {external_id}"
        sb = self.sandbox
        response = httpx.post(
            f"{sb.mailchimp_base_url}/lists/{sb.mailchimp_list_id}/members/{member['id']}/actions/delete-permanent",
            auth=("anystring", sb.mailchimp_api_key), timeout=30)
        assert response.status_code == 204, response.text

    def mc_stats(self) -> dict:
        return self.mc("GET", "/stats")

    def mc_writes(self) -> int:
        """Writes (POST, PUT, PATCH, DELETE) the Mailchimp sandbox's REST API received since its stats were reset."""
        requests = self.mc_stats()["requests"]
        return sum(n for route, n in requests.items() if route.split(" ")[0] in ("POST", "PUT", "PATCH", "DELETE"))


@pytest.fixture
def mc_world(sandbox, afas_sandbox_clean, mailchimp_sandbox_clean, tmp_path) -> MailchimpWorld:
    httpx.post(f"{sandbox.afas_admin_url}/dataset/generate", json={"contacts": WORLD_CONTACTS, "seed": 7},
               timeout=60).raise_for_status()
    return MailchimpWorld(sandbox, tmp_path)
