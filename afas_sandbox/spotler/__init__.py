"""The Spotler Mail+ emulator: REST API (``app``), OAuth 1.0a checks (``oauth``), account (``store``), admin."""
