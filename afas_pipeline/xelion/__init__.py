"""Xelion (the Dutch cloud PBX): the REST client and what the pipeline does with the address book and the call log."""
