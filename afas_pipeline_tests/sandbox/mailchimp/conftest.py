from __future__ import annotations

import hashlib

import httpx
import pytest

from afas_pipeline_tests.conftest import mailchimp_sandbox_clean, reset_mailchimp_sandbox
from afas_sandbox.server import Sandbox

__all__ = ["mailchimp_sandbox_clean", "reset_mailchimp_sandbox"]

PROBLEM_JSON = "application/problem+json"




def mailchimp_client(sb: Sandbox, key: str | None = None, user: str = "anystring") -> httpx.Client:
    """A client as Mailchimp's docs show it: Basic auth, any user name, the API key as password."""
    return httpx.Client(base_url=sb.mailchimp_base_url + "/", auth=(user, key or sb.mailchimp_api_key), timeout=30)


@pytest.fixture
def mailchimp(mailchimp_sandbox_clean: Sandbox) -> httpx.Client:
    with mailchimp_client(mailchimp_sandbox_clean) as client:
        yield client


@pytest.fixture
def mailchimp_admin(mailchimp_sandbox_clean: Sandbox) -> httpx.Client:
    with httpx.Client(base_url=mailchimp_sandbox_clean.mailchimp_admin_url + "/", timeout=60) as client:
        yield client


@pytest.fixture
def members(mailchimp_sandbox_clean: Sandbox) -> str:
    """The members collection of the sandbox audience, relative to the API root."""
    return f"lists/{mailchimp_sandbox_clean.mailchimp_list_id}/members"


def subscriber_hash(email: str) -> str:
    return hashlib.md5(email.strip().lower().encode()).hexdigest()


def put_member(client: httpx.Client, members: str, email: str, **body) -> dict:
    """PUT (upsert) one member by its subscriber hash; new members subscribed unless told otherwise."""
    body = {"email_address": email, "status_if_new": "subscribed", **body}
    response = client.put(f"{members}/{subscriber_hash(email)}", json=body)
    assert response.status_code == 200, response.text
    return response.json()


def problem(response: httpx.Response, status: int, title: str) -> dict:
    """The problem+json body of a refusal, after checking its status, content type and title."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM_JSON)
    body = response.json()
    assert (body["status"], body["title"]) == (status, title), body
    assert body["detail"] and body["instance"] and body["type"].startswith("https://mailchimp.com/")
    return body
