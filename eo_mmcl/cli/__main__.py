"""``python -m eo_mmcl.cli``: the ``eo-mmcl`` command line."""

from eo_mmcl.cli import app

app()
