"""``deepcompress report``: the compression report of an existing ``.dcz`` file."""

from __future__ import annotations

import click


@click.command("report")
@click.argument("dcz_path", metavar="MODEL.dcz")
@click.option("-o", "--output", metavar="PREFIX|DIR",
              help="Where to write: a folder, or a path prefix [default: beside MODEL.dcz].")
@click.option("--no-plots", is_flag=True, help="Write only the Markdown and JSON files.")
def report_cmd(dcz_path, output, no_plots):
    """Write MODEL.report.md, MODEL.report.json and MODEL.report/*.png for a .dcz file.

    Sizes after each stage (dense, P, P+Q, P+Q+H), per-layer tables and the
    index and gap distributions come from the file; the accuracy after each
    stage from the metrics it stores. The weights before sharing are only known
    while compressing (`compress --report`), so this command leaves them out.
    """
    from deepcompress.model_input import check_input_file
    from deepcompress.report import write_report

    check_input_file(dcz_path, ".dcz")
    paths = write_report(output or dcz_path, None, dcz_path, None, plots=not no_plots)
    click.echo("wrote " + ", ".join(str(p) for p in paths[:2]) + (f" and {len(paths) - 2} plots" if len(paths) > 2 else ""))
