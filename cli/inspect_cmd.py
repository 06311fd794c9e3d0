"""``deepcompress inspect FILE [--json]``: report what a .dcz file holds.

Torch-free: it reads the header, verifies every checksum and prints the
per-layer table (Deep Compression's Tables 2-5 columns) without decoding any
stream. Library errors propagate for the main entry point to print.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from deepcompress.container.api import read_dcz
from deepcompress.container.summary import format_summary, summarize


@click.command("inspect")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=True, exists=False))
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def inspect_cmd(file: Path, as_json: bool) -> None:
    """Show the layers, sizes, codecs and recipe stored in a .dcz FILE."""
    summary = summarize(read_dcz(file))
    if as_json:
        click.echo(json.dumps(summary, indent=2, sort_keys=True))
    else:
        click.echo(format_summary(summary))
