"""A contact's document in the change feed (`Contact.feed_document`, its parts shared with other contacts) is byte
for byte what serializing `Contact.to_json` gives, whatever the contact holds."""

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from afas_sandbox.spotler.store import PERMISSION_BITS, PROPERTY_TYPES, Contact

VALUE = st.one_of(st.none(), st.text(max_size=8), st.integers(-5, 5), st.booleans())
PROPERTY = st.sampled_from([*(name for name in PROPERTY_TYPES if name != "permissions"), "permissions", "é\"\\"])
CONTACT = st.builds(
    Contact,
    external_id=st.text(min_size=1, max_size=6),
    encrypted_id=st.text(max_size=6),
    created=st.integers(0, 2 * 10**12),
    last_changed=st.integers(0, 2 * 10**12),
    properties=st.dictionaries(PROPERTY, VALUE, max_size=6),
    permissions=st.dictionaries(st.sampled_from([*PERMISSION_BITS, 7]), st.one_of(st.booleans(), st.integers(0, 1)),
                                max_size=3),
    channels=st.dictionaries(st.sampled_from(["EMAIL", "SMS"]), st.one_of(st.booleans(), st.integers(0, 1)), max_size=2),
    test_group=st.booleans(),
    temporary=st.booleans(),
)


@settings(max_examples=500)
@given(CONTACT)
def test_a_contacts_feed_document_is_its_json(contact):
    assert orjson.dumps(contact.feed_document()) == orjson.dumps(contact.to_json())


def test_the_usual_contacts_document_names_each_permission_with_its_description():
    contact = Contact("C1", "enc", 1, 2, {"email": "a@example.nl", "firstName": "Jan"}, {1: True}, {"EMAIL": True})
    assert orjson.dumps(contact.feed_document()) == orjson.dumps(contact.to_json())
    assert orjson.loads(orjson.dumps(contact.feed_document()))["properties"]["permissions"][0] == {
        "bit": 1, "enabled": True, "description": PERMISSION_BITS[1]}
