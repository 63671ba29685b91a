"""``synthgen sample``: rows into a table file (in chunks) or images into a folder, from a model file."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import click
from tqdm.auto import tqdm

from synthgen._files import check_output
from synthgen.choices import DEFAULT_CHUNK_ROWS, DEFAULT_SHARD_ROWS, IMAGE_FORMATS
from synthgen.cli.common import PATH, friendly_errors, parse_conditions, refuse, split_condition
from synthgen.errors import InvalidArgumentError


@click.command()
@click.argument("model", type=PATH)
@click.option("-n", "--num-rows", type=click.IntRange(min=1), required=True,
              help="Rows to generate (patients, for a patient-history model).")
@click.option("-o", "--output", type=PATH, required=True, help="Output file: .csv, .tsv or .parquet.")
@click.option("-c", "--condition", "conditions", multiple=True, metavar="COLUMN=VALUE",
              help="Only rows with this value; repeat for several columns.")
@click.option("--seed", type=int, help="Random seed for sampling.")
@click.option("--chunk-rows", type=click.IntRange(min=1), default=DEFAULT_CHUNK_ROWS, show_default=True,
              help="Rows generated and written at a time; bounds memory for large -n. Patient histories "
                   "are generated and written in fixed blocks of whole patients (1,024) whatever this is, so "
                   "that a seed gives the same patients at any chunk size.")
@click.option("--format", "image_format", type=click.Choice(IMAGE_FORMATS),
              help="Image models: write DICOM files, PNG files or one .npz. [default: dicom]")
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True,
              help="Tables, -o a folder: local processes writing the part files side by side.")
@click.option("--shard-rows", type=click.IntRange(min=1), default=DEFAULT_SHARD_ROWS, show_default=True,
              help="Tables, -o a folder: rows per part file (whole patients, for a patient-history model).")
@click.option("--device", help="cuda, mps or cpu. [default: best available]")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@friendly_errors
def sample(model: Path, num_rows: int, output: Path, conditions: tuple[str, ...], seed: int | None,
           chunk_rows: int, image_format: str | None, workers: int, shard_rows: int, device: str | None,
           quiet: bool) -> None:
    """Generate NUM_ROWS synthetic rows (or images) from MODEL into OUTPUT.

    Tables: OUTPUT is a .csv, .tsv or .parquet file. Categorical and boolean conditions are met
    by the model directly; numeric ones by keeping only matching rows. An impossible condition is
    an error, never an empty file. Patient histories likewise, on static columns only (numeric
    ones, and every one of a DP model or an older model file, by keeping only matching patients).

    Tables, OUTPUT a folder (no file suffix): Parquet parts out/part-00000.parquet, ... of
    --shard-rows rows each, written by --workers processes (or by every rank of a `torchrun
    --nproc-per-node N -m synthgen sample ...` launch). Each part is drawn from a seed derived from
    (--seed, part number), so the rows do not depend on the number of workers; a part appears only
    when complete, and running the same command again skips the parts already there (resume).
    Patient histories too: -n and --shard-rows count patients, a patient's rows stay in one part,
    and ids are distinct across parts.

    Images: OUTPUT is a new folder; --condition LABEL_COLUMN=LABEL (or just LABEL) asks for one
    class. DICOM output is built from scratch (fresh UIDs, no input tag copied) and marked SYNTHETIC.
    """
    from synthgen.images.io import write_images
    from synthgen.io import TableWriter, is_table_path
    from synthgen.loading import load
    from synthgen.synthesizers.images import ImageSynthesizer
    synthesizer = load(model, device=device)
    is_image = isinstance(synthesizer, ImageSynthesizer)
    if is_image and is_table_path(output):
        raise InvalidArgumentError(f"-o {str(output)!r}: an image model writes a folder of images (--format "
                                   f"{'/'.join(IMAGE_FORMATS)}), not a table file; give a folder name")
    sharded = not is_image and not is_table_path(output)
    if not sharded:  # a folder of parts is checked by sample_shards, which may resume into it
        check_output(output, inputs=[model], directory=is_image)
    if is_image:
        if len(conditions) > 1:
            raise InvalidArgumentError("an image model takes one --condition: the label")
        label = None
        if conditions:
            if "=" in conditions[0]:
                column, label = split_condition(conditions[0], [synthesizer.label_name_ or ""])
                if synthesizer.label_name_ and column != synthesizer.label_name_:
                    raise InvalidArgumentError(f"--condition {conditions[0]!r}: this model's label is {synthesizer.label_name_!r}")
            else:
                label = conditions[0]
        images = synthesizer.sample(num_rows, condition=label, seed=seed)
        files = write_images(images, output, image_format or "dicom")
        click.echo(f"Wrote {len(images)} synthetic images to {output} ({len(set(files))} files, {image_format or 'dicom'})")
        return
    refuse(("--format",), image_format is not None, "image models; table output takes its format from the file name")
    if synthesizer.kind == "sequence":
        wanted = parse_conditions(conditions, list(synthesizer.schema_.column_order))
        if synthesizer.tables_ is not None:
            refuse(("--workers",), workers > 1, "one long table; a two-table model is sampled whole into one folder")
            refuse(("--condition",), bool(conditions), "one long table; a two-table model samples patients unconditioned")
            _sample_two_tables(synthesizer, num_rows, output, model, seed, sharded)
            return
        if sharded:
            _sample_parts(model, num_rows, output, seed, wanted, workers, shard_rows, chunk_rows, device, quiet,
                          "patients")
            return
        _refuse_workers_for_one_file(output, workers)
        patients = synthesizer.sample_chunks(num_rows, wanted, seed=seed)  # whole patients, a block at a time
        with TableWriter(output) as writer, tqdm(total=num_rows, unit="patient", disable=quiet, leave=False) as bar:
            for block in patients:
                writer.write(block)
                bar.update(block[synthesizer.schema_.entity_column].nunique())
        click.echo(f"Wrote {num_rows} synthetic patients ({writer.rows} rows) to {output}")
        return
    columns = list(synthesizer.metadata_.columns)
    if sharded:
        _sample_parts(model, num_rows, output, seed, parse_conditions(conditions, columns), workers, shard_rows,
                      chunk_rows, device, quiet, "rows")
        return
    _refuse_workers_for_one_file(output, workers)
    chunks = synthesizer.sample_chunks(num_rows, parse_conditions(conditions, columns), seed=seed, chunk_rows=chunk_rows)
    with TableWriter(output) as writer, tqdm(total=num_rows, unit="row", disable=quiet, leave=False) as bar:
        for chunk in chunks:
            writer.write(chunk)
            bar.update(len(chunk))
    click.echo(f"Wrote {writer.rows} synthetic rows to {output}")


def _sample_parts(model: Path, num_rows: int, output: Path, seed: int | None, conditions: dict[str, Any],
                  workers: int, shard_rows: int, chunk_rows: int, device: str | None, quiet: bool, unit: str) -> None:
    """Parquet parts into the folder ``output`` (synthgen.shards), and one line on what was written."""
    from synthgen.shards import sample_shards
    report = sample_shards(model, num_rows, output, seed=seed, conditions=conditions, workers=workers,
                           shard_rows=shard_rows, chunk_rows=chunk_rows, device=device, progress=not quiet)
    if int(os.environ.get("RANK", "0")) == 0:  # under torchrun, one report for all ranks
        click.echo(f"{output}: {report.plan.num_rows} synthetic {unit} in {len(report.parts)} part(s) "
                   f"({report.written} written now, {report.skipped} already there), seed {report.plan.seed}")


def _refuse_workers_for_one_file(output: Path, workers: int) -> None:
    if workers > 1 or int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise InvalidArgumentError(f"-o {str(output)!r}: several workers write part files into a folder; "
                                   "give a folder name (no .csv/.tsv/.parquet suffix) or leave --workers at 1")


def _sample_two_tables(synthesizer: Any, patients: int, output: Path, model: Path, seed: int | None, folder: bool) -> None:
    """A parent and a child table, as the model learned them, into a new folder (whole, or not at all)."""
    from synthgen._files import atomic_directory
    layout = synthesizer.tables_
    if not folder:
        raise InvalidArgumentError(f"-o {str(output)!r}: this model writes two tables ({layout.parent}.csv and "
                                   f"{layout.child}.csv); give a new folder name")
    check_output(output, inputs=[model], directory=True)
    parents, children = synthesizer.sample_tables(patients, seed=seed)
    with atomic_directory(output) as staging:
        parents.to_csv(staging / f"{layout.parent}.csv", index=False)
        children.to_csv(staging / f"{layout.child}.csv", index=False)
    click.echo(f"Wrote {len(parents)} synthetic {layout.parent!r} rows and {len(children)} {layout.child!r} rows to {output}")
