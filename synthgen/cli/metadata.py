"""``synthgen metadata``: the detected column kinds, as editable SDV-style JSON."""
from __future__ import annotations

from pathlib import Path

import click

from synthgen._files import check_output
from synthgen.cli.common import PATH, friendly_errors


@click.command("metadata")
@click.argument("data", type=PATH)
@click.option("-o", "--output", type=PATH, required=True, help="JSON file to write.")
@friendly_errors
def metadata_command(data: Path, output: Path) -> None:
    """Detect DATA's column kinds and write them as editable SDV-style metadata JSON."""
    from synthgen.io import read_table
    from synthgen.metadata import Metadata
    check_output(output, inputs=[data])
    detected = Metadata.detect(read_table(data))
    detected.save(output)
    click.echo(f"Wrote {output}: {detected!r}")
