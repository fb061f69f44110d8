"""Protocol-faithful emulators of the systems the pipeline talks to, served over real HTTP on localhost.

Start one with ``afas_pipeline.sandbox.server.start_sandbox`` (background thread) or ``serve`` (foreground).
"""
