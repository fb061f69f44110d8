"""The AFAS Profit emulator: synthetic CRM (``dataset``), storage and views (``model``, ``store``,
``connectors``), GetConnector queries (``query``), UpdateConnectors (``updates``), HTTP (``app``, ``admin``).
"""
