"""The salted key hashes: what logs, metadata and the sync state know records and phone numbers by."""

import hashlib

from afas_pipeline.lib import privacy


def test_key_hashes_are_keyed_blake2b_of_the_salt_and_stay_the_same_from_value_to_value(monkeypatch):
    # The sync state holds these hashes: made from a keyed hasher copied per value, they must be the hashes
    # BLAKE2b keyed by the salt gives, value after value (a hasher fed two values would give another).
    for value in ("1001", "anna@example.com", "1001", ""):
        salted = hashlib.blake2b(value.encode(), key=privacy._SALT, digest_size=6).hexdigest()
        assert privacy.hash_key(value) == privacy.hash_bytes(value.encode()) == salted
        assert privacy.number_key(value) == hashlib.blake2b(value.encode(), key=privacy._SALT, digest_size=16,
                                                            person=b"phone-number").hexdigest()
    before = privacy.hash_key("1001"), privacy.number_key("+31201234567")
    monkeypatch.setattr(privacy, "_SALT", b"another installation")
    assert privacy.hash_key("1001") != before[0] and privacy.number_key("+31201234567") != before[1]
    assert privacy.hash_key("1001") == hashlib.blake2b(b"1001", key=b"another installation", digest_size=6).hexdigest()


def test_hash_many_gives_hash_bytes_of_each_text_and_none_for_none():
    texts = [b"jan@voorbeeld.nl", None, "zoë@voorbeeld.nl".encode(), b""]
    assert privacy.hash_many(texts) == [privacy.hash_bytes(texts[0]), None, privacy.hash_bytes(texts[2]),
                                        privacy.hash_bytes(b"")]
    assert privacy.hash_many(iter(texts[:1])) == [privacy.hash_key("jan@voorbeeld.nl")]
