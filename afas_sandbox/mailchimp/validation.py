"""What Mailchimp accepts in a member or merge-field document (reference §B3), as pure functions.

Each function returns the cleaned value or raises ``Problem`` (Invalid Resource with ``errors[]``):

- ``email_address``: trimmed, one ``@``, a dotted domain; case is kept (the hash lower-cases it).
- merge values are strings or numbers (anything else: ``merge_fields.TAG`` "Data did not match any of the
  schemas described in anyOf."); an empty string clears a field. Per type: ``text`` at most 255 characters;
  ``number`` a number; ``address`` an object whose ``addr1``, ``city``, ``state`` and ``zip`` are all filled
  (``addr2`` optional, ``country`` defaults to US; other keys such as ``street`` do not count) or else
  "Please enter a complete address"; ``phone`` free text, US format when ``phone_format`` is ``US``; ``date``
  and ``birthday`` in the field's ``date_format``; ``url``/``imageurl`` http(s); ``radio``/``dropdown`` one of
  ``choices``; ``zip`` five digits. All merge-field problems of one document are reported together, with
  detail "Your merge fields were invalid.". Tags the audience does not have are ignored.
- A required merge field must have a value when a member is created (and may not be cleared), unless
  ``skip_merge_validation=true``.
"""

from __future__ import annotations

import datetime as dt
import re

from afas_sandbox.admin_common import query_int
from afas_sandbox.mailchimp.errors import MERGE_DETAIL, field_error, invalid

EMAIL_SYNTAX = re.compile(r"[^@\s\"(),:;<>\[\\\]]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
                          r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*\.[A-Za-z]{2,}")
MAX_TEXT = 255
WRITE_STATUSES = ("subscribed", "unsubscribed", "cleaned", "pending", "transactional")
READ_STATUSES = (*WRITE_STATUSES, "archived")
MERGE_TYPES = ("text", "number", "address", "phone", "date", "url", "imageurl", "radio", "dropdown", "birthday",
               "zip")
ADDRESS_REQUIRED = ("addr1", "city", "state", "zip")
ADDRESS_KEYS = ("addr1", "addr2", "city", "state", "zip", "country")
US_PHONE = re.compile(r"\(?\d{3}\)?[-. ]?\d{3}[-. ]?\d{4}")
DATE_FORMATS = {"MM/DD/YYYY": "%m/%d/%Y", "DD/MM/YYYY": "%d/%m/%Y", "YYYY-MM-DD": "%Y-%m-%d"}
BIRTHDAY_FORMATS = {"MM/DD": "%m/%d", "DD/MM": "%d/%m"}
TAG_SYNTAX = re.compile(r"[A-Z][A-Z0-9_]{0,9}")


def email_address(value) -> str:
    if value is None or (isinstance(value, str) and not value.strip()):
        raise field_error("email_address", "This value should not be blank.")
    if not isinstance(value, str):
        raise field_error("email_address", "Schema describes string, " + type(value).__name__ + " found instead")
    value = value.strip()
    if len(value) > MAX_TEXT or not EMAIL_SYNTAX.fullmatch(value):
        raise invalid([{"field": "email_address", "message": "Please provide a valid email address."}],
                      f"{value} looks fake or invalid, please enter a real email address.")
    return value


def status(value, field: str) -> str | None:
    if value is None:
        return None
    if value not in WRITE_STATUSES:
        raise field_error(field, f"Value must be one of: {', '.join(WRITE_STATUSES)} (not {value!r})")
    return value


def flag(value, field: str, default: bool = False) -> bool:
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise field_error(field, "Schema describes boolean, " + type(value).__name__ + " found instead")


def text(value, field: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise field_error(field, "Schema describes string, " + type(value).__name__ + " found instead")
    return value


def _merge_value(merge: dict, value) -> tuple[object, str | None]:
    """(the value to store, None) or (None, the message Mailchimp gives for this field)."""
    kind, options = merge["type"], merge.get("options") or {}
    if value == "":
        return "", None
    if kind == "address":
        if not isinstance(value, dict):
            return None, "Please enter a complete address"
        address = {key: str(value.get(key) or "").strip() for key in ADDRESS_KEYS}
        if not all(address[key] for key in ADDRESS_REQUIRED):
            return None, "Please enter a complete address"
        address["country"] = address["country"] or "US"
        return address, None
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        return None, "Data did not match any of the schemas described in anyOf."
    if kind == "number":
        try:
            number = float(value)
        except ValueError:
            return None, "Please enter a number"
        return (int(number) if number.is_integer() else number), None
    value = str(value)
    if len(value) > MAX_TEXT:
        return None, f"Please enter a value of at most {MAX_TEXT} characters"
    if kind == "phone" and options.get("phone_format") == "US" and not US_PHONE.fullmatch(value.strip()):
        return None, "Please enter a US phone number in the format (###) ###-####"
    if kind in ("date", "birthday"):
        formats = DATE_FORMATS if kind == "date" else BIRTHDAY_FORMATS
        layout = formats.get(options.get("date_format") or "", next(iter(formats.values())))
        try:
            dt.datetime.strptime(value.strip() + ("/2000" if kind == "birthday" else ""),
                                 layout + ("/%Y" if kind == "birthday" else ""))
        except ValueError:
            return None, f"Please enter a valid date ({options.get('date_format') or next(iter(formats))})"
    if kind in ("url", "imageurl") and not re.match(r"https?://[^\s/]+", value):
        return None, "Please enter a valid URL"
    if kind in ("radio", "dropdown") and value not in (options.get("choices") or []):
        return None, f"Please choose one of: {', '.join(options.get('choices') or [])}"
    if kind == "zip" and not re.fullmatch(r"\d{5}", value.strip()):
        return None, "Please enter a valid zip code"
    return value, None


def merge_values(fields: list[dict], values, *, current: dict | None, skip_required: bool) -> dict:
    """The merge values of a write, checked against the audience's ``fields`` (``current``: the member's values
    before it, None for a new member) -> {tag: value or "" to clear}."""
    if values is None:
        values = {}
    if not isinstance(values, dict):
        raise field_error("merge_fields", "Schema describes object, " + type(values).__name__ + " found instead")
    by_tag = {f["tag"]: f for f in fields}
    cleaned, errors = {}, []
    for tag, value in values.items():
        merge = by_tag.get(tag)
        if merge is None:
            continue
        stored, message = _merge_value(merge, value)
        if message is None:
            cleaned[tag] = stored
        elif message.startswith("Data did not match"):
            errors.append({"field": f"merge_fields.{tag}", "message": message})
        else:
            errors.append({"field": tag, "message": message})
    if errors and any(e["field"].startswith("merge_fields.") for e in errors):
        raise invalid(errors)
    if not skip_required:
        result = {**(current or {}), **cleaned}
        for merge in fields:
            touched = current is None or merge["tag"] in cleaned
            if merge["required"] and touched and result.get(merge["tag"], "") == "":
                errors.append({"field": merge["tag"], "message": "Please enter a value"})
    if errors:
        raise invalid(errors, MERGE_DETAIL)
    return cleaned


def merge_field_definition(doc, taken_tags: set[str], next_id: int) -> dict:
    """A ``POST merge-fields`` body -> the stored merge field (``merge_id`` ``next_id``)."""
    if not isinstance(doc, dict):
        raise field_error("", "Schema describes object, " + type(doc).__name__ + " found instead")
    errors = []
    name, kind = doc.get("name"), doc.get("type")
    if not isinstance(name, str) or not name.strip():
        errors.append({"field": "name", "message": "This value should not be blank."})
    if kind not in MERGE_TYPES:
        errors.append({"field": "type", "message": f"Value must be one of: {', '.join(MERGE_TYPES)}"})
    tag = doc.get("tag")
    if tag is None:
        tag = f"MMERGE{next_id}"
    elif not isinstance(tag, str) or not TAG_SYNTAX.fullmatch(tag.upper()):
        errors.append({"field": "tag", "message": "A tag is at most 10 letters, digits or underscores, starting "
                                                  "with a letter"})
    options = doc.get("options") or {}
    if not isinstance(options, dict):
        errors.append({"field": "options", "message": "Schema describes object"})
        options = {}
    if kind in ("radio", "dropdown") and not (isinstance(options.get("choices"), list) and options["choices"]):
        errors.append({"field": "options.choices", "message": "A radio or dropdown field needs choices"})
    if errors:
        raise invalid(errors)
    tag = tag.upper()
    if tag in taken_tags or tag == "EMAIL":
        raise invalid([{"field": "tag", "message": f'A Merge Field with the tag "{tag}" already exists for this '
                                                  f'list.'}])
    return {"merge_id": next_id, "tag": tag, "name": name.strip(), "type": kind,
            "required": flag(doc.get("required"), "required"), "default_value": text(doc.get("default_value"),
                                                                                        "default_value"),
            "public": flag(doc.get("public"), "public"), "display_order": next_id + 1,
            "options": _options(kind, options), "help_text": text(doc.get("help_text"), "help_text")}


def _options(kind: str, options: dict) -> dict:
    if kind == "address":
        return {"default_country": int(options.get("default_country") or 164)}
    if kind == "phone":
        return {"phone_format": options.get("phone_format") or "none"}
    if kind == "date":
        return {"date_format": options.get("date_format") or "MM/DD/YYYY"}
    if kind == "birthday":
        return {"date_format": options.get("date_format") or "MM/DD"}
    if kind in ("radio", "dropdown"):
        return {"choices": [str(c) for c in options["choices"]]}
    if kind == "text":
        return {"size": int(options.get("size") or 25)}
    return {}


class Paging:
    """``count`` (default 10, at most 1000) and ``offset`` of a collection GET."""

    def __init__(self, params):
        self.count = _whole(params, "count", 10, 1000)
        self.offset = _whole(params, "offset", 0, None)

    def page(self, rows: list) -> list:
        return rows[self.offset: self.offset + self.count]


def _whole(params, name: str, default: int, highest: int | None) -> int:
    try:
        value = query_int(params, name, default)
    except ValueError:
        raise field_error(name, "Schema describes integer") from None
    if value < 0 or (highest is not None and value > highest):
        bound = f"between 0 and {highest}" if highest is not None else "0 or more"
        raise field_error(name, f"{name} must be {bound}")
    return value


def instant(params, name: str) -> int | None:
    """An ISO 8601 query time (``2015-10-21T15:41:36+00:00``; no offset means UTC) -> epoch seconds."""
    raw = params.get(name)
    if not raw:
        return None
    try:
        value = dt.datetime.fromisoformat(raw.strip().replace(" ", "+"))
    except ValueError:
        raise field_error(name, f"{name} is not an ISO 8601 time like 2015-10-21T15:41:36+00:00") from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.timezone.utc)
    return int(value.timestamp())


def projection(params):
    """``fields`` / ``exclude_fields`` (comma-separated, dot notation) as a function over a response body."""
    keep = [p.strip() for p in (params.get("fields") or "").split(",") if p.strip()]
    drop = [p.strip() for p in (params.get("exclude_fields") or "").split(",") if p.strip()]
    keep_tree, drop_tree = _tree(keep), _tree(drop)

    def apply(doc):
        if keep_tree:
            doc = _keep(doc, keep_tree)
        if drop_tree:
            doc = _drop(doc, drop_tree)
        return doc

    return apply


def wanted_keys(params, collection: str) -> frozenset[str] | None:
    """The keys of each item of `collection` that `fields` asks for (``members.merge_fields.X`` names
    ``merge_fields``); None when it does not limit them, or `exclude_fields` is given too."""
    keep = [p.strip() for p in (params.get("fields") or "").split(",") if p.strip()]
    if params.get("exclude_fields") or not keep:
        return None
    items = _tree(keep).get(collection, None)
    return frozenset(items) if items else None


def _tree(paths: list[str]) -> dict:
    """Dotted paths as a tree; a leaf (None) stands for the whole value."""
    tree: dict = {}
    for path in paths:
        node, parts = tree, path.split(".")
        for part in parts[:-1]:
            if part in node and node[part] is None:
                break
            node = node.setdefault(part, {})
        else:
            node[parts[-1]] = None
    return tree


def _keep(doc, tree: dict):
    if isinstance(doc, list):
        return [_keep(item, tree) for item in doc]
    if not isinstance(doc, dict):
        return doc
    return {key: (doc[key] if sub is None else _keep(doc[key], sub)) for key, sub in tree.items() if key in doc}


def _drop(doc, tree: dict):
    if isinstance(doc, list):
        return [_drop(item, tree) for item in doc]
    if not isinstance(doc, dict):
        return doc
    return {key: (_drop(value, tree[key]) if key in tree else value) for key, value in doc.items()
            if key not in tree or tree[key] is not None}
