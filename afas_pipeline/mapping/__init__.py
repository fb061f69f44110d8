"""The declarative mapping between AFAS and a destination (`mappings/<destination>.yaml`).

Import from the submodules (`afas_pipeline.mapping.load`, `.models`, `.drift`, `.errors`); this package
file stays empty so that `afas_pipeline.afas.sources` can import `errors` without an import cycle.
"""
