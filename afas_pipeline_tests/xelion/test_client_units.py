"""Xelion client rules that need no Xelion: the PUT body of an edit (`edited`), Xelion's zone-less times, when the
session is renewed, how answers are classified and retried, and what errors and the repr never show (answers come
from an httpx mock transport; the client's own code runs as it is)."""

from __future__ import annotations

import datetime as dt
import email.utils
import pickle
import threading
from collections.abc import Callable

import dagster as dg
import httpx
import pytest

from afas_pipeline.xelion.client import XelionClient, edited, xelion_instant
from afas_pipeline.xelion.errors import (
    XelionAuthError,
    XelionConfigError,
    XelionError,
    XelionRequestError,
    XelionSessionInUse,
    XelionUnavailable,
    XelionWriteUnknown,
)

ROOT = "https://xelion.example.nl/api/v1/master"
PASSWORD = "pw-Geheim-7f3a"
FAST = {"backoff_initial_s": 0.0, "backoff_max_s": 0.0}
UTC = dt.UTC


# --- edited: the PUT body ------------------------------------------------------------------------------------


def person(**fields) -> dict:
    """A Person as Xelion answers GET addressables/<oid>."""
    return {
        "oid": "1001", "objectType": "Person", "commonName": "Jan de Vries", "changeType": "Unmodified",
        "givenName": "Jan", "namePrefix": "de", "familyName": "Vries", "comment": None,
        "telecomAddresses": [
            {"oid": "1002", "objectType": "TelecomAddress", "addressType": "Mobile", "address": "+31612345678",
             "label": None, "orderNumber": 0, "changeType": "Unmodified"},
            {"oid": "1003", "objectType": "TelecomAddress", "addressType": "Email", "address": "Jan@Voorbeeld.example",
             "label": "werk", "orderNumber": 1, "changeType": "Unmodified"}],
        "addresses": [{"oid": "1004", "objectType": "DeliveryAddress", "street": "Dorpsstraat", "streetNumber": "1",
                       "zipCode": "1234 AB", "city": "Ergens", "state": None, "country": "NL", "addressType": "Home",
                       "changeType": "Unmodified"}],
        "employments": [{"oid": "1005", "objectType": "Employment", "jobTitle": "Inkoper", "changeType": "Unmodified",
                         "organisation": {"oid": "900", "objectType": "Organisation", "commonName": "Werk BV"}}],
        "lastModified": "2026-10-25 02:05:00", **fields}


def change_types(body: dict, name: str) -> list[tuple[str, str]]:
    return [(item["oid"], item["changeType"]) for item in body[name]]


def test_nothing_to_change_is_none_however_the_same_values_are_typed():
    desired = {"givenName": "Jan ", "comment": "", "objectType": "Person", "commonName": "ignored",
               "telecomAddresses": [{"addressType": "Mobile", "address": "06-12 34 56 78"},
                                    {"addressType": "Email", "address": "jan@voorbeeld.EXAMPLE"}],
               "addresses": [{"street": "Dorpsstraat", "streetNumber": "1", "zipCode": "1234 AB", "city": "Ergens",
                              "country": "NL", "addressType": "Home"}],
               "employments": [{"organisation": "900"}]}
    assert edited(person(), desired) is None
    assert edited(person(), {}) is None


def test_a_changed_field_modifies_the_object_and_leaves_the_sub_objects_unmodified():
    current = person()
    body = edited(current, {"familyName": "Visser", "comment": "uit AFAS"})
    assert (body["changeType"], body["familyName"], body["comment"], body["givenName"]) == (
        "Modified", "Visser", "uit AFAS", "Jan")
    for name in ("telecomAddresses", "addresses", "employments"):
        assert {t for _, t in change_types(body, name)} == {"Unmodified"}
    assert current == person(), "the object read is not changed"


def test_sub_objects_not_desired_are_removed_new_ones_created_with_an_empty_oid():
    body = edited(person(), {
        "telecomAddresses": [{"addressType": "Mobile", "address": "+31612345678"},
                             {"addressType": "Telephone", "address": "0101234567", "label": "kantoor"}],
        "addresses": [{"street": "Dorpsstraat", "streetNumber": "1a", "zipCode": "1234 AB", "city": "Ergens",
                       "country": "NL", "addressType": "Home"}],
        "employments": [{"organisation": {"oid": "901"}, "jobTitle": "Directeur"}]})
    assert body["changeType"] == "Unmodified"
    assert change_types(body, "telecomAddresses") == [("1002", "Unmodified"), ("1003", "Removed"), ("", "Created")]
    assert body["telecomAddresses"][2] == {"oid": "", "objectType": "TelecomAddress", "addressType": "Telephone",
                                           "address": "0101234567", "label": "kantoor", "changeType": "Created"}
    assert change_types(body, "addresses") == [("1004", "Removed"), ("", "Created")]
    assert body["addresses"][1]["objectType"] == "DeliveryAddress" and body["addresses"][1]["streetNumber"] == "1a"
    assert change_types(body, "employments") == [("1005", "Removed"), ("", "Created")]
    assert body["employments"][1]["organisation"] == {"oid": "901"}


def test_a_matched_sub_object_with_another_label_or_job_title_is_modified_in_place():
    body = edited(person(), {"telecomAddresses": [{"addressType": "Mobile", "address": "+31612345678", "label": "prive"},
                                                  {"addressType": "Email", "address": "jan@voorbeeld.example"}],
                             "employments": [{"organisation": "900", "jobTitle": "Directeur"}]})
    assert change_types(body, "telecomAddresses") == [("1002", "Modified"), ("1003", "Unmodified")]
    assert body["telecomAddresses"][0]["label"] == "prive"
    assert change_types(body, "employments") == [("1005", "Modified")]
    assert body["employments"][0]["jobTitle"] == "Directeur"
    assert body["employments"][0]["organisation"]["oid"] == "900"


def test_a_sub_collection_left_out_is_kept_and_duplicates_are_one_item():
    current = person()
    current["telecomAddresses"].append({**current["telecomAddresses"][0], "oid": "1006"})  # the same number twice
    body = edited(current, {"telecomAddresses": [{"addressType": "Mobile", "address": "+31612345678"}] * 2
                            + [{"addressType": "Email", "address": "jan@voorbeeld.example"}]})
    assert change_types(body, "telecomAddresses") == [("1002", "Unmodified"), ("1003", "Unmodified"),
                                                      ("1006", "Removed")]
    assert change_types(body, "addresses") == [("1004", "Unmodified")]
    assert change_types(body, "employments") == [("1005", "Unmodified")]


def test_another_object_type_is_refused():
    with pytest.raises(ValueError, match="Organisation"):
        edited(person(), {"objectType": "Organisation", "name": "X"})


# --- Xelion's times ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("text, utc", [
    ("2026-07-01 12:00:00", "2026-07-01 10:00:00"),  # summer time, UTC+2
    ("2026-01-15 12:00:00", "2026-01-15 11:00:00"),  # winter time, UTC+1
    ("2026-10-25 02:05:00", "2026-10-25 00:05:00"),  # twice that night: the earlier one
    ("2026-03-29 02:30:00", "2026-03-29 00:30:00"),  # not at all that night: the earlier reading
])
def test_xelion_times_are_amsterdam_local_read_as_the_earlier_instant(text, utc):
    assert xelion_instant(text) == dt.datetime.fromisoformat(utc).replace(tzinfo=UTC)


def test_an_unreadable_time_is_a_value_error():
    with pytest.raises(ValueError):
        xelion_instant("morgen")


# --- a fake Xelion behind a mock transport ---------------------------------------------------------------------


class FakeXelion:
    """Answers login and renew with numbered tokens valid `lifetime_s` after its `now`, and every other call from
    `answer(request)` (default: an empty page); records (method, path, token) of each request."""

    def __init__(self, lifetime_s: float = 3600, answer: Callable[[httpx.Request], httpx.Response] | None = None):
        self.lifetime_s, self.answer = lifetime_s, answer
        self.now = dt.datetime(2026, 6, 1, 10, 0, tzinfo=UTC)
        self.issued = 0
        self.valid: set[str] = set()
        self.seen: list[tuple[str, str, str | None]] = []
        self.bodies: list[bytes] = []
        self.lock = threading.Lock()

    def tokens(self, valid_until: str | None = None) -> httpx.Response:
        with self.lock:
            self.issued += 1
            token = f"T{self.issued}"
            self.valid.add(token)
        until = valid_until if valid_until is not None else (
            (self.now + dt.timedelta(seconds=self.lifetime_s)).astimezone(dt.timezone(dt.timedelta(hours=2)))
            .strftime("%Y-%m-%d %H:%M:%S"))
        return httpx.Response(200, json={"authentication": token, "renewalToken": f"R{self.issued}",
                                         "validUntil": until},
                              headers={"Date": email.utils.format_datetime(self.now, usegmt=True)})

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path.split("/master/", 1)[1]
        token = request.headers.get("Authorization", "").removeprefix("xelion ") or None
        with self.lock:
            self.seen.append((request.method, path, token))
            self.bodies.append(request.content)
        if path in ("me/login", "me/renew"):
            return self.tokens()
        if path == "me/logout":
            return httpx.Response(204)
        if self.answer is not None:
            return self.answer(request)
        return page([])

    def calls(self, path: str) -> int:
        return sum(1 for _, p, _ in self.seen if p == path)


def page(objects: list[dict], more: bool = False, next_id: str | None = None) -> httpx.Response:
    links = [{"rel": "next", "href": "x", "method": "GET"}] if more else []
    paging = {"nextId": next_id or objects[-1]["oid"]} if objects else {}
    return httpx.Response(200, json={"data": [{"object": o, "links": []} for o in objects],
                                     "meta": {"links": links, "paging": paging}})


def error(status: int, code: int, message: str = "refused", **headers) -> httpx.Response:
    return httpx.Response(status, json={"errorCode": code, "message": message, "info": "resource=GET /x"},
                          headers=headers)


def make(fake: Callable[[httpx.Request], httpx.Response], **config) -> XelionClient:
    client = XelionClient(**{"base_url": ROOT, "user_name": "koppeling", "password": PASSWORD, **FAST, **config})
    client._http = httpx.Client(base_url=ROOT + "/", transport=httpx.MockTransport(fake))
    return client


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


# --- the session --------------------------------------------------------------------------------------------


def test_the_token_is_renewed_before_valid_until_without_waiting_for_a_401():
    fake, clock = FakeXelion(lifetime_s=600), Clock()
    client = make(fake, renew_before_s=120)
    client._now = clock
    assert list(client.addressables()) == []
    login = fake.bodies[0]
    assert b'"userSpace":"afas-pipeline"' in login and PASSWORD.encode() in login and b"appKey" not in login
    clock.t += 479
    list(client.addressables())
    assert client.stats.renewals == 0
    clock.t += 2  # within renew_before_s of validUntil
    list(client.addressables())
    assert [(m, p) for m, p, _ in fake.seen] == [("POST", "me/login"), ("GET", "addressables"),
                                                  ("GET", "addressables"), ("POST", "me/renew"),
                                                  ("GET", "addressables")]
    assert fake.bodies[3] == b'"R1"', "the renewal token, as a JSON string"
    assert fake.seen[-1][2] == "T2"
    assert (client.stats.logins, client.stats.renewals) == (1, 1)


def test_a_short_lifetime_renews_at_half_of_it_and_an_unreadable_one_only_after_a_401():
    fake, clock = FakeXelion(lifetime_s=100), Clock()
    client = make(fake, renew_before_s=120)
    client._now = clock
    list(client.addressables())
    clock.t += 49
    list(client.addressables())
    assert client.stats.renewals == 0
    clock.t += 2
    list(client.addressables())
    assert client.stats.renewals == 1

    odd = FakeXelion()
    odd.tokens = lambda valid_until=None, base=odd.tokens: base("soon")  # type: ignore[method-assign]
    client = make(odd)
    client._now = clock
    list(client.addressables())
    clock.t += 10 ** 6
    list(client.addressables())
    assert client.stats.renewals == 0


def test_a_401_renews_once_and_a_second_401_is_an_auth_error():
    fake = FakeXelion(answer=lambda request: error(401, 10000, "token abc123 expired"))
    client = make(fake)
    with pytest.raises(XelionAuthError) as caught:
        list(client.addressables())
    assert [(m, p) for m, p, _ in fake.seen] == [("POST", "me/login"), ("GET", "addressables"), ("POST", "me/renew"),
                                                  ("GET", "addressables")]
    assert (caught.value.status_code, caught.value.error_code) == (401, 10000)
    assert "abc123" not in str(caught.value)


def test_a_refused_renewal_logs_in_again():
    def answer(request: httpx.Request) -> httpx.Response:
        return page([]) if request.headers["Authorization"] != "xelion T1" else error(401, 10000)

    fake = FakeXelion(answer=answer)
    base = fake.__call__

    def refusing_renew(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("me/renew"):
            fake.seen.append(("POST", "me/renew", None))
            return error(401, 10004, "unknown renewal token R1")
        return base(request)

    client = make(refusing_renew)
    assert list(client.addressables()) == []
    assert [p for _, p, _ in fake.seen] == ["me/login", "addressables", "me/renew", "me/login", "addressables"]
    assert (client.stats.logins, client.stats.renewals) == (2, 0)


def test_threads_that_meet_an_expired_token_together_renew_it_once():
    arrived = threading.Barrier(4, timeout=10)

    def answer(request: httpx.Request) -> httpx.Response:
        if request.headers["Authorization"] == "xelion T1" and request.url.path.endswith("addressables"):
            arrived.wait()  # all four in flight with the old token
            return error(401, 10000)
        return page([])

    fake = FakeXelion(answer=answer)
    client = make(fake)
    client._token()  # logged in with T1
    threads = [threading.Thread(target=lambda: list(client.addressables())) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert (client.stats.logins, client.stats.renewals) == (1, 1)
    assert sum(1 for _, p, t in fake.seen if p == "addressables" and t == "T2") == 4


def test_user_space_app_key_and_a_password_from_the_environment_go_into_the_login(monkeypatch):
    monkeypatch.setenv("XELION_PASSWORD", "uit-de-omgeving")
    fake = FakeXelion()
    client = make(fake, password=dg.EnvVar("XELION_PASSWORD"), user_space="afas-prod", app_key="app-123")
    list(client.addressables())
    assert b'"password":"uit-de-omgeving"' in fake.bodies[0]
    assert b'"userSpace":"afas-prod"' in fake.bodies[0] and b'"appKey":"app-123"' in fake.bodies[0]
    monkeypatch.delenv("XELION_PASSWORD")
    with pytest.raises(XelionConfigError, match="XELION_PASSWORD is not set"):
        list(make(FakeXelion(), password=dg.EnvVar("XELION_PASSWORD")).addressables())


def test_close_logs_out_with_the_token():
    fake = FakeXelion()
    client = make(fake)
    list(client.addressables())
    client.close()
    assert fake.seen[-1] == ("POST", "me/logout", "T1")
    client.close()
    assert fake.calls("me/logout") == 1


@pytest.mark.parametrize("status, code, kind, says, logins", [
    (401, 10005, XelionSessionInUse, "XELION_USER_SPACE", 2),  # once more with a userSpace of its own, then no more
    (401, 10004, XelionAuthError, "XELION_PASSWORD", 1),
    (401, 10006, XelionAuthError, "disabled", 1),
    (404, 10100, XelionConfigError, "XELION_BASE_URL", 1),
])
def test_a_refused_login_says_what_to_do_and_is_not_retried(status, code, kind, says, logins):
    seen = []

    def refuse(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return error(status, code, "user koppeling with password pw-Geheim-7f3a in userSpace afas-pipeline")

    with pytest.raises(kind) as caught:
        list(make(refuse).addressables())
    text = str(caught.value)
    assert says in text and caught.value.error_code == code and len(seen) == logins
    assert "koppeling" not in text and PASSWORD not in text


def test_10005_after_a_login_whose_answer_was_lost_says_so():
    answers = iter([httpx.ReadError("connection reset"), error(401, 10005), error(401, 10005)])

    def login(request: httpx.Request) -> httpx.Response:
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    with pytest.raises(XelionSessionInUse, match="got no answer"):
        list(make(login).addressables())


# --- answers: retried or not ---------------------------------------------------------------------------------


def in_session(*answers: httpx.Response | Exception) -> tuple[XelionClient, FakeXelion]:
    """A logged-in client whose calls get `answers` in turn, then empty pages / 200 objects."""
    queue = list(answers)

    def answer(request: httpx.Request) -> httpx.Response:
        if queue:
            item = queue.pop(0)
            if isinstance(item, Exception):
                raise item
            return item
        if request.method == "GET" and request.url.path.endswith("addressables"):
            return page([])
        return httpx.Response(200, json={"object": {"oid": "7", "objectType": "Organisation"}})

    fake = FakeXelion(answer=answer)
    return make(fake), fake


@pytest.mark.parametrize("status, code", [(400, 10202), (403, 10101), (404, 10100), (409, 10203)])
def test_4xx_are_answers_not_retried_and_never_echo_xelions_message(status, code):
    client, fake = in_session(error(status, code, "Jan de Vries +31612345678 jan@voorbeeld.example is wrong"))
    with pytest.raises(XelionRequestError) as caught:
        client.create_addressable({"objectType": "Person", "familyName": "Jan de Vries"})
    error_ = caught.value
    assert (error_.status_code, error_.error_code, error_.endpoint) == (status, code, "POST addressables")
    for value in ("Jan", "Vries", "612345678", "voorbeeld"):
        assert value not in str(error_)
    assert fake.calls("addressables") == 1 and client.stats.retries == 0
    if status == 403:
        assert "permission" in str(error_)


def test_a_400_names_the_field_paths_of_its_message_but_no_value():
    client, _ = in_session(error(400, 10202, "telecomAddresses[1].address '0612' is not a valid phone number; "
                                             "'addresses.city' and jan.de@vries.nl too"))
    with pytest.raises(XelionRequestError) as caught:
        client.update_addressable("7", {"objectType": "Organisation"})
    assert caught.value.fields == ("telecomAddresses[1].address",)
    assert "0612" not in str(caught.value) and "vries" not in str(caught.value)


@pytest.mark.parametrize("answer", [
    error(429, 10400), error(429, 10402), error(503, 11000, **{"Retry-After": "0"}), error(500, 11000),
    httpx.Response(502), httpx.ReadError("reset"), httpx.RemoteProtocolError("cut"), httpx.ConnectError("refused"),
])
def test_a_read_is_retried_after_429_5xx_and_broken_connections(answer):
    client, fake = in_session(answer)
    assert list(client.addressables()) == []
    assert fake.calls("addressables") == 2 and client.stats.retries == 1


@pytest.mark.parametrize("answer", [error(429, 10400), error(503, 11000), error(500, 11000),
                                    httpx.ConnectError("refused")])
def test_a_create_is_sent_again_when_xelion_surely_did_not_do_it(answer):
    client, fake = in_session(answer)
    assert client.create_addressable({"objectType": "Organisation", "name": "X"})["oid"] == "7"
    assert fake.calls("addressables") == 2 and client.stats.creates == 1


@pytest.mark.parametrize("answer", [httpx.Response(502), httpx.Response(504), httpx.ReadError("reset"),
                                    httpx.RemoteProtocolError("cut"), httpx.ReadTimeout("slow")])
def test_a_create_whose_answer_was_lost_is_not_sent_again(answer):
    client, fake = in_session(answer)
    with pytest.raises(XelionWriteUnknown):
        client.create_addressable({"objectType": "Organisation", "name": "X"})
    assert fake.calls("addressables") == 1 and client.stats.creates == 0


def test_a_retry_after_beyond_the_limit_is_not_waited_for():
    client, fake = in_session(error(503, 11000, **{"Retry-After": "3600"}))
    with pytest.raises(XelionUnavailable, match="3600s"):
        list(client.addressables())
    assert fake.calls("addressables") == 1


def test_retries_give_up_as_unavailable_with_the_last_status():
    client, fake = in_session(*[error(429, 10400)] * 3)
    client = make(fake, max_attempts=3)
    with pytest.raises(XelionUnavailable) as caught:
        list(client.addressables())
    assert (caught.value.status_code, caught.value.error_code) == (429, 10400)
    assert fake.calls("addressables") == 3 and client.stats.retries == 2


# --- paging, single objects, recordings -------------------------------------------------------------------------


def test_paging_follows_next_id_and_a_full_page_without_a_next_link():
    pages = {None: page([{"oid": "1"}, {"oid": "2"}], more=True), "2": page([{"oid": "3"}, {"oid": "4"}]),
             "4": page([])}
    fake = FakeXelion(answer=lambda request: pages[request.url.params.get("after")])
    client = make(fake)
    assert [a["oid"] for a in client.addressables(where={"obj_type": "Person"}, limit=2)] == ["1", "2", "3", "4"]
    gets = [r for r in fake.seen if r[1] == "addressables"]
    assert len(gets) == 3 and client.stats.reads == 3


def test_a_cursor_that_does_not_move_is_an_error_and_limit_is_checked():
    fake = FakeXelion(answer=lambda request: page([{"oid": "1"}], more=True, next_id="1"))
    client = make(fake)
    with pytest.raises(XelionError, match="did not move"):
        client.communications_after("1")
    with pytest.raises(ValueError):
        list(client.addressables(limit=1001))


def test_audio_is_none_for_404_and_an_error_for_a_json_answer():
    client, _ = in_session(error(404, 10100), httpx.Response(200, json={"not": "audio"}),
                           httpx.Response(200, content=b"\xff\xfb\x18\xc4", headers={"Content-Type": "audio/x-mp3"}))
    assert client.audio("5") is None
    with pytest.raises(XelionError, match="not audio"):
        client.audio("5")
    assert client.audio("5") == b"\xff\xfb\x18\xc4"


# --- what is never shown --------------------------------------------------------------------------------------


def test_the_repr_shows_the_url_and_user_space_but_never_the_password():
    client = XelionClient(base_url="https://user:pw@xelion.example.nl/api/v1/master?x=1", user_name="koppeling",
                          password=PASSWORD, app_key="geheime-app-key")
    for text in (repr(client), str(client)):
        assert "xelion.example.nl/api/v1/master" in text and "afas-pipeline" in text
        assert PASSWORD not in text and "geheime" not in text and "pw@" not in text


def test_a_plain_http_base_url_elsewhere_is_refused_before_sending_the_password():
    client = XelionClient(base_url="http://xelion.example.nl/api/v1/master", user_name="u", password=PASSWORD)
    with pytest.raises(XelionConfigError, match="XELION_BASE_URL") as caught:
        list(client.addressables())
    assert PASSWORD not in str(caught.value)


def test_errors_survive_pickling_with_their_error_code():
    error_ = XelionSessionInUse("in use", endpoint="POST me/login", status_code=401, error_code=10005)
    copy = pickle.loads(pickle.dumps(error_))
    assert (type(copy), copy.error_code, copy.status_code, str(copy)) == (
        XelionSessionInUse, 10005, 401, "in use (endpoint=POST me/login, status=401, errorCode=10005)")
