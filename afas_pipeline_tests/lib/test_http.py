"""HTTP helpers shared by the clients: the server's clock from its `Date` header."""

from __future__ import annotations

from datetime import datetime, timezone

import httpx
import pytest

from afas_pipeline.lib.http import server_time


def test_server_time_is_the_date_header_in_utc():
    response = httpx.Response(200, headers={"Date": "Thu, 03 Dec 2026 10:15:07 GMT"})
    assert server_time(response) == datetime(2026, 12, 3, 10, 15, 7, tzinfo=timezone.utc)


@pytest.mark.parametrize("headers", [{}, {"Date": "yesterday"}, {"Date": ""}])
def test_server_time_without_a_valid_date_is_none(headers):
    assert server_time(httpx.Response(200, headers=headers)) is None
