"""Keys in logs and metadata are hashed: an operator can match them, nobody can read them."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable

# A per-installation salt keeps small integer ids (ContactId 1001) from being looked up by brute force.
_SALT = os.environ.get("AFAS_PIPELINE_HASH_SALT", "afas-pipeline").encode()


def hash_key(value: object) -> str:
    """A short, stable, salted hash of a record key (12 hex characters)."""
    return hash_bytes(str(value).encode())


def hash_bytes(data: bytes) -> str:
    """`hash_key` of the text these UTF-8 bytes are, without making the text."""
    return hashlib.blake2b(data, key=_SALT[:64], digest_size=6).hexdigest()


def number_key(e164: str) -> str:
    """The salted hash a phone number (E.164) is known by in the phone index and the sync state: 32 hex
    characters, long enough that a million numbers never share one, and no number can be read back."""
    return hashlib.blake2b(e164.encode(), key=_SALT[:64], digest_size=16, person=b"phone-number").hexdigest()


def hashed_sample(values: Iterable[object], limit: int = 10) -> list[str]:
    """Hashes of the first `limit` values, for check metadata that shows which rows offend."""
    out = []
    for value in values:
        if len(out) == limit:
            break
        out.append(hash_key(value))
    return out
