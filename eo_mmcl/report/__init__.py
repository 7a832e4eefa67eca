"""The report of a probe run: main table, findings, plots and maps, as Markdown and HTML."""

from eo_mmcl.report.findings import depth_findings, findings
from eo_mmcl.report.formatting import format_main
from eo_mmcl.report.render import build_report
from eo_mmcl.report.tables import MainTable, depth_table, main_table

__all__ = [
    "MainTable",
    "build_report",
    "depth_findings",
    "depth_table",
    "findings",
    "format_main",
    "main_table",
]
