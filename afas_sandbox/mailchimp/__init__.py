"""The Mailchimp Marketing API v3 emulator: REST API (``app``), account (``store``), document checks
(``validation``), problem+json refusals (``errors``), admin."""
