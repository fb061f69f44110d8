"""Base URLs as settings: is one usable, is it safe to send credentials to, and how to show it."""

from __future__ import annotations

from urllib.parse import urlsplit

from authlib.common.security import is_secure_transport

from afas_pipeline.lib.text import printable

__all__ = ["base_url_problem", "shown_url"]


def shown_url(url: str) -> str:
    """`url` fit for a message: without user info, query or fragment, control characters escaped."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:  # an invalid port or IPv6 literal: show it as given, but escaped
        return printable(url)
    if not parts.scheme or not host:
        return printable(url)
    host = f"[{host}]" if ":" in host else host
    return printable(f"{parts.scheme}://{host}{port}{parts.path}")


def base_url_problem(setting: str, url: str, *, sends: str, example: str) -> str | None:
    """What is wrong with the base URL in `setting`, in one line naming the setting and the fix; None if
    nothing. `sends` says what would travel to it (the token, signed requests); plain http is refused
    except to this machine (127.0.0.0/8, ::1, localhost), as authlib's `is_secure_transport` decides for
    OAuth (it also honours AUTHLIB_INSECURE_TRANSPORT)."""
    shown = shown_url(url)
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError:
        return f"{setting} '{shown}' is not a valid URL; set it like {example}"
    if parts.scheme not in ("http", "https") or not parts.hostname or any(c.isspace() for c in url):
        return f"{setting} '{shown}' is not an http(s) URL; set it like {example}"
    if not is_secure_transport(url):
        return (
            f"{setting} '{shown}' would send {sends} unencrypted over plain http: use https, like {example} "
            f"(plain http is accepted only on this machine: 127.0.0.1, ::1 or localhost)"
        )
    return None
