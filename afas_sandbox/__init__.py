"""Protocol-faithful emulators of the systems the pipeline talks to, served over real HTTP on localhost.

Start one with ``afas_sandbox.server.start_sandbox`` (background thread) or ``serve`` (foreground).
"""
