"""Reports on compressions and the granularity sweep.

* ``collector``: :class:`ReportCollector`, a pipeline stage hook, and :func:`attach_report`;
* ``sizes``: dense / P / P+Q / P+Q+H sizes from a ``.dcz`` file;
* ``writer``: :func:`write_report` and :func:`finish_report` (Markdown, JSON, PNG);
* ``plots``: the PNG figures (matplotlib Agg);
* ``memrefs``: the SCNN-like memory-reference model (docs/memory_model.md);
* ``sweep``: the granularity sweep behind ``deepcompress sweep``.

Importing this package does not import torch or matplotlib.
"""

from __future__ import annotations

from .collector import ReportCollector, attach_report
from .writer import finish_report, write_report

__all__ = ["ReportCollector", "attach_report", "finish_report", "write_report"]
