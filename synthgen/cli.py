"""The ``synthgen`` command: a thin shell over the Python API (parse, call, print)."""
from __future__ import annotations

import functools
import json
import logging
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
import numpy as np
from tqdm.auto import tqdm

from synthgen._version import __version__
from synthgen._files import check_output, describe_error
from synthgen.errors import InvalidArgumentError, SynthgenError
from synthgen.choices import CLASSIFIERS, DEFAULT_CHUNK_ROWS, EXAMPLE_TABLES, IMAGE_FORMATS, SYNTHETIC_FLAG
from synthgen.dp.accounting import DPSettings, statement as dp_statement

if TYPE_CHECKING:  # the commands import the API when they run, so --help loads no torch
    from synthgen.evaluation import Gate
    from synthgen.image_synthesizer import ImageSynthesizer
    from synthgen.synthesizer import TabularSynthesizer

_PATH = click.Path(path_type=Path)


def _friendly_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    """Show synthgen's own errors as one line and exit 1, instead of a traceback."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except SynthgenError as exc:
            raise click.ClickException(str(exc)) from exc
        except OSError as exc:  # the machine's refusal (disk full, permissions) on a file synthgen did not expect
            where = f"{exc.filename!r}: " if exc.filename else ""
            raise click.ClickException(f"{where}{describe_error(exc)}") from exc

    return wrapper


def _split_condition(pair: str, columns: list[str]) -> tuple[str, str]:
    """COLUMN=VALUE split at the first '=' that leaves a known column name, so a column named ``x=y``
    can be conditioned (``x=y=a``); with none known, at the first '=' (the error then names the column)."""
    cuts = [i for i, character in enumerate(pair) if character == "="]
    if not cuts or cuts[0] == 0:
        raise InvalidArgumentError(f"--condition {pair!r}: write it as COLUMN=VALUE, e.g. --condition sex=F")
    cut = next((i for i in cuts if pair[:i] in columns), cuts[0])
    return pair[:cut], pair[cut + 1:]


def _parse_conditions(pairs: tuple[str, ...], columns: list[str]) -> dict[str, str]:
    return dict(_split_condition(pair, columns) for pair in pairs)


def _image_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """The options that say how to read a folder of images (shared by fit and augment)."""
    options = [
        click.option("--labels", "labels_path", type=_PATH, help="Images: CSV naming each file (file/filename/path column) and its label."),
        click.option("--label-column", help="Images: the label column of --labels."),
        click.option("--label-tag", help="Images: DICOM attribute holding the label, e.g. SeriesDescription."),
        click.option("--image-size", type=int, help="Images: side in pixels after resizing (multiple of 8, 16-128). [default: 64]"),
        click.option("--window", help="DICOM: intensity window, a CT preset (soft-tissue, lung, bone, brain) or CENTRE,WIDTH."),
        click.option("--reader", help="Images: reader to use (dicom, folder, npz) when a folder holds several kinds."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _is_image_input(path: Path) -> bool:
    return path.is_dir() or path.suffix.lower() == ".npz"


def _read_images(path: Path, options: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """The images at ``path`` and the reading options, as recorded in the model for later re-reading."""
    from synthgen.data.images import read_images
    reading = {
        "reader": options.get("reader"),
        "labels": str(options["labels_path"]) if options.get("labels_path") else None,
        "label_column": options.get("label_column"),
        "label_tag": options.get("label_tag"),
        "image_size": options.get("image_size") or 64,
        "window": options.get("window"),
    }
    if reading["label_column"] and not reading["labels"]:
        raise InvalidArgumentError("--label-column needs --labels (the CSV that holds that column)")
    return read_images(path, **reading), reading


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="synthgen")
@click.option("-v", "--verbose", is_flag=True, help="Log progress details to stderr.")
def main(verbose: bool) -> None:
    """Synthetic patient data with measured fidelity and privacy.

    \b
    synthgen fit patients.csv -o model.sgz --seed 7
    synthgen sample model.sgz -n 100000 -o synthetic.parquet --seed 1
    synthgen sample model.sgz -n 500 --condition sex=F -o rare.csv
    synthgen info model.sgz
    """
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _terminate)
        click.get_current_context().call_on_close(lambda: signal.signal(signal.SIGTERM, previous))


def _terminate(signum: int, frame: Any) -> None:
    """SIGTERM as an exception, as SIGINT already is: the writers' cleanup runs and no partial file is left."""
    raise SystemExit(128 + signum)


@main.command()
@click.argument("data", type=_PATH)
@click.option("-o", "--output", type=_PATH, required=True, help="Model file to write (conventionally .sgz).")
@click.option("--metadata", "metadata_path", type=_PATH, help="SDV single-table metadata JSON; overrides detection.")
@click.option("--seed", type=int, help="Random seed; the same seed on the same CPU gives identical results.")
@click.option("--steps", type=click.IntRange(min=1),
              help="Optimiser steps. [default: CTGAN's 300 epochs at batch 500, 1,500-10,000; DP: 3,000-10,000]")
@click.option("--batch-size", type=click.IntRange(min=1),
              help="Rows per optimiser step. [default: 128 below 2,500 rows, else 500; DP: 500]")
@click.option("--no-calibrate", is_flag=True,
              help="Keep the generator's raw numeric marginals (default: mapped onto the training quantiles).")
@click.option(
    "--min-category-count", type=click.IntRange(min=1), default=5, show_default=True,
    help="Categories seen fewer times are pooled into 'Other', so a rare value cannot single out a patient.",
)
@click.option(
    "--holdout", type=click.FloatRange(0, 0.5), default=0.0, show_default=True,
    help="Share of rows kept out of training and recorded in the model, for `synthgen evaluate`.",
)
@click.option("--device", help="cuda, cuda:1, mps or cpu. [default: best available]")
@click.option("--dp-epsilon", type=float,
              help="Train with differential privacy at this total epsilon (covers the column statistics and training).")
@click.option("--dp-delta", type=float, help="DP delta; must be below 1/n. [default: 1e-5]")
@click.option("--dp-clip", type=float, default=1.0, show_default=True, help="DP per-row gradient clipping norm.")
@click.option("--dp-noise", type=float,
              help="Fix the DP noise multiplier instead of deriving it; training then stops when epsilon is spent.")
@click.option("--dp-statistics-share", type=float,
              help="Share of epsilon for the column statistics and two-way tables. [default: 0.9 below 2,500 rows, else 0.7]")
@click.option("--dp-unit-column", help="Column identifying a patient when a patient can have several rows.")
@click.option("--dp-no-pairs", is_flag=True,
              help="Do not release the dependent column pairs' two-way tables (their share of epsilon then goes to the rest).")
@_image_options
@click.option("--quiet", is_flag=True, help="No progress bar.")
@_friendly_errors
def fit(data: Path, output: Path, metadata_path: Path | None, seed: int | None, steps: int | None,
        batch_size: int | None, min_category_count: int, holdout: float, device: str | None,
        dp_epsilon: float | None, dp_delta: float | None, dp_clip: float, dp_noise: float | None,
        dp_statistics_share: float | None, dp_unit_column: str | None, dp_no_pairs: bool, quiet: bool,
        no_calibrate: bool,
        **image_options: Any) -> None:
    """Train a synthesizer on DATA and save it to OUTPUT.

    DATA is a table (CSV, TSV or Parquet) or images: a folder of DICOM files, a folder of PNG/JPEG
    files (one sub-folder per class) or a MedMNIST-style .npz file.

    Tables: column kinds are detected unless --metadata is given; run `synthgen metadata` to get
    an editable file. With --dp-epsilon the whole fit is (epsilon, delta)-differentially private
    for adding or removing one patient (the row count is private too); it needs --metadata (nothing
    about the schema is detected from the rows), and its noise comes from OS entropy, so a DP fit is
    not byte-reproducible even with --seed. Declare public ranges/categories in the metadata
    ("public_bounds", "public_values") to spend nothing on them.

    Images: labels come from --labels CSV + --label-column, or from a DICOM tag (--label-tag);
    CT is windowed with --window (a preset or CENTRE,WIDTH) and resized to --image-size.
    """
    from synthgen.image_synthesizer import ImageSynthesizer
    from synthgen.io import read_table
    from synthgen.metadata import Metadata
    from synthgen.synthesizer import TabularSynthesizer
    check_output(output, inputs=[data, metadata_path, image_options.get("labels_path")])  # before any training
    if _is_image_input(data):
        if metadata_path or dp_epsilon is not None or min_category_count != 5 or no_calibrate:
            raise InvalidArgumentError("--metadata, --min-category-count, --no-calibrate and --dp-* apply to tables, not images")
        images, reading = _read_images(data, image_options)
        synthesizer = ImageSynthesizer(seed=seed, steps=steps, batch_size=batch_size, device=device,
                                       progress=not quiet).fit(images, holdout=holdout, reading=reading)
        synthesizer.save(output)
        summary = synthesizer.training_
        classes = ", ".join(f"{name or '(unlabelled)'}: {count}" for name, count in
                            zip(synthesizer.classes_, synthesizer.class_counts_))
        click.echo(
            f"Trained on {summary['images']} images of {synthesizer.image_size_} px ({classes}; "
            f"{len(synthesizer.holdout_indices_)} held out): {summary['steps']} steps in {summary['seconds']:.1f} s "
            f"on {summary['device']} (seed {synthesizer.seed_}). Saved {output}"
        )
        return
    if any(value is not None for value in image_options.values()):
        raise InvalidArgumentError("--labels, --label-column, --label-tag, --image-size, --window and --reader apply to images")
    dp_given = (dp_delta is not None or dp_noise is not None or dp_unit_column or dp_no_pairs
                or dp_statistics_share is not None)
    if dp_epsilon is None and dp_given:
        raise InvalidArgumentError("--dp-delta, --dp-noise, --dp-statistics-share, --dp-unit-column and --dp-no-pairs "
                                   "need --dp-epsilon")
    dp = None
    if dp_epsilon is not None:
        share = {"preprocessing_share": dp_statistics_share} if dp_statistics_share is not None else {}
        dp = DPSettings(epsilon=dp_epsilon, delta=dp_delta, max_grad_norm=dp_clip, noise_multiplier=dp_noise,
                        unit_column=dp_unit_column, pairs=not dp_no_pairs, **share)
    table = read_table(data)
    metadata = Metadata.load(metadata_path) if metadata_path else None
    synthesizer = TabularSynthesizer(
        metadata, seed=seed, steps=steps, batch_size=batch_size,
        min_category_count=min_category_count, device=device, progress=not quiet, dp=dp, calibrate=not no_calibrate,
    ).fit(table, holdout=holdout)
    synthesizer.save(output)
    summary = synthesizer.training_
    click.echo(
        f"Trained on {'about ' if 'privacy' in summary else ''}{summary['rows']} rows x {summary['columns']} columns "
        f"({_held_out(synthesizer)}): {summary['steps']} steps in "
        f"{summary['seconds']:.1f} s on {summary['device']} (seed {synthesizer.seed_}). Saved {output}"
    )
    if synthesizer.privacy_ is not None:
        statement = dp_statement(synthesizer.privacy_)
        click.echo(statement[0].upper() + statement[1:])


def _held_out(synthesizer: TabularSynthesizer) -> str:
    """How many rows were held out; a DP model records only the fraction (a count would reveal n)."""
    if "holdout_fraction" in synthesizer.training_:
        return f"{synthesizer.training_['holdout_fraction']:.0%} held out"
    return f"{len(synthesizer.holdout_rows_)} held out"


@main.command()
@click.argument("model", type=_PATH)
@click.option("-n", "--num-rows", type=click.IntRange(min=1), required=True, help="Rows to generate.")
@click.option("-o", "--output", type=_PATH, required=True, help="Output file: .csv, .tsv or .parquet.")
@click.option("-c", "--condition", "conditions", multiple=True, metavar="COLUMN=VALUE",
              help="Only rows with this value; repeat for several columns.")
@click.option("--seed", type=int, help="Random seed for sampling.")
@click.option("--chunk-rows", type=click.IntRange(min=1), default=DEFAULT_CHUNK_ROWS, show_default=True,
              help="Rows generated and written at a time; bounds memory for large -n.")
@click.option("--format", "image_format", type=click.Choice(IMAGE_FORMATS),
              help="Image models: write DICOM files, PNG files or one .npz. [default: dicom]")
@click.option("--device", help="cuda, mps or cpu. [default: best available]")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@_friendly_errors
def sample(model: Path, num_rows: int, output: Path, conditions: tuple[str, ...], seed: int | None,
           chunk_rows: int, image_format: str | None, device: str | None, quiet: bool) -> None:
    """Generate NUM_ROWS synthetic rows (or images) from MODEL into OUTPUT.

    Tables: OUTPUT is a .csv, .tsv or .parquet file. Categorical and boolean conditions are met
    by the model directly; numeric ones by keeping only matching rows. An impossible condition is
    an error, never an empty file.

    Images: OUTPUT is a new folder; --condition LABEL_COLUMN=LABEL (or just LABEL) asks for one
    class. DICOM output is built from scratch (fresh UIDs, no input tag copied) and marked SYNTHETIC.
    """
    from synthgen.image_io import write_images
    from synthgen.image_synthesizer import ImageSynthesizer
    from synthgen.io import TableWriter, is_table_path
    from synthgen.loading import load
    synthesizer = load(model, device=device)
    is_image = isinstance(synthesizer, ImageSynthesizer)
    if is_image and is_table_path(output):
        raise InvalidArgumentError(f"-o {str(output)!r}: an image model writes a folder of images (--format "
                                   f"{'/'.join(IMAGE_FORMATS)}), not a table file; give a folder name")
    check_output(output, inputs=[model], directory=is_image)
    if is_image:
        if len(conditions) > 1:
            raise InvalidArgumentError("an image model takes one --condition: the label")
        label = None
        if conditions:
            if "=" in conditions[0]:
                column, label = _split_condition(conditions[0], [synthesizer.label_name_ or ""])
                if synthesizer.label_name_ and column != synthesizer.label_name_:
                    raise InvalidArgumentError(f"--condition {conditions[0]!r}: this model's label is {synthesizer.label_name_!r}")
            else:
                label = conditions[0]
        images = synthesizer.sample(num_rows, condition=label, seed=seed)
        files = write_images(images, output, image_format or "dicom")
        click.echo(f"Wrote {len(images)} synthetic images to {output} ({len(set(files))} files, {image_format or 'dicom'})")
        return
    if image_format is not None:
        raise InvalidArgumentError("--format applies to image models; table output takes its format from the file name")
    columns = list(synthesizer.metadata_.columns)
    chunks = synthesizer.sample_chunks(num_rows, _parse_conditions(conditions, columns), seed=seed, chunk_rows=chunk_rows)
    with TableWriter(output) as writer, tqdm(total=num_rows, unit="row", disable=quiet, leave=False) as bar:
        for chunk in chunks:
            writer.write(chunk)
            bar.update(len(chunk))
    click.echo(f"Wrote {writer.rows} synthetic rows to {output}")


@main.command()
@click.argument("model", type=_PATH)
@click.option("--json", "as_json", is_flag=True, help="Print everything as JSON.")
@_friendly_errors
def info(model: Path, as_json: bool) -> None:
    """Show MODEL's schema, training summary, versions and seed."""
    from synthgen.loading import load
    details = load(model, device="cpu").describe()
    if as_json:
        click.echo(json.dumps(details, indent=2))
        return
    training = details["training"]
    # A model file holds no clock readings (same seed, same bytes); a model fitted in this process has them.
    created = f" on {details['created']}" if details.get("created") else ""
    duration = f"{training['seconds']:.1f} s " if "seconds" in training else ""
    click.echo(f"synthgen {details['kind']} model, written by synthgen {details['synthgen_version']} "
               f"(torch {details['torch_version']}){created}")
    if details["kind"] == "image":
        mapping = details["mapping"]
        click.echo(f"trained on {training['images']} images, {training['steps']} steps of {training['batch_size']}, "
                   f"{duration}on {training['device']}, seed {details['seed']}")
        click.echo(f"images: {details['image_size']} x {details['image_size']} px, {details['channels']} channel(s), "
                   f"{mapping['modality']}, values {mapping['low']:g} to {mapping['high']:g} {mapping['unit']}")
        counts = ", ".join(f"{name or '(unlabelled)'}: {count}" for name, count in zip(details["classes"], details["class_counts"]))
        click.echo(f"label {details['label_name'] or '(none)'}: {counts}")
        click.echo("no differential privacy (DP training is available for tables)")
        return
    click.echo(f"trained on {training['rows']} rows, {training['steps']} steps of {training['batch_size']} rows, "
               f"{duration}on {training['device']}, seed {details['seed']}")
    if training.get("privacy"):
        click.echo(dp_statement(training["privacy"]))
    else:
        click.echo("no differential privacy (trained without --dp-epsilon)")
    click.echo(f"conditional columns: {', '.join(details['conditional_columns']) or 'none'}")
    if details.get("calibrated_columns"):
        click.echo(f"marginals calibrated onto the training quantiles: {', '.join(details['calibrated_columns'])}")
    click.echo("columns:")
    for name, spec in details["metadata"]["columns"].items():
        extras = ", ".join(f"{k}={v}" for k, v in spec.items() if k != "sdtype")
        click.echo(f"  {name}: {spec['sdtype']}" + (f" ({extras})" if extras else ""))


#: Exit code of `synthgen evaluate` when the report is written but a gate fails (1 = an error).
GATE_FAILED_EXIT = 3
#: Exit code of `synthgen evaluate` when no gate fails but one is inconclusive (too little evidence).
GATE_INCONCLUSIVE_EXIT = 4


@main.command("evaluate")
@click.argument("model", type=_PATH, required=False)
@click.option("--real", "real_path", type=_PATH, required=True,
              help="The real table. With MODEL: the file given to fit (its --holdout rows are split off again).")
@click.option("--synthetic", "synthetic_path", type=_PATH, required=True, help="The synthetic table to judge.")
@click.option("--holdout", "holdout_path", type=_PATH, help="Real rows never used for training (about as many as --real).")
@click.option("-o", "--output", type=_PATH, help="Write the self-contained HTML report here.")
@click.option("--json", "json_path", type=_PATH, help="Write the report as JSON here.")
@click.option("--target", help="Column to predict for the machine-learning utility test (needs a holdout).")
@click.option("--gate", "gate_rules", multiple=True, metavar="RULE",
              help="Pass/fail rule such as dcr_share<=0.52, or a test against the null of fresh real rows such as "
                   "dcr_share<=null+0.05@0.002 (fails when p < 0.002 and the excess over the null is above 0.05); "
                   "replaces the default of that metric. Repeatable.")
@click.option("--sensitive", "sensitive", multiple=True, metavar="COLUMN",
              help="A column an attacker may want to infer (attribute inference tries only these; default: every "
                   "column). Repeatable.")
@click.option("--metadata", "metadata_path", type=_PATH, help="SDV metadata JSON (default: MODEL's, else detected).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for subsampling and attacks.")
@_image_options
@click.option("--quiet", is_flag=True, help="No progress bar.")
@_friendly_errors
def evaluate_command(model: Path | None, real_path: Path, synthetic_path: Path, holdout_path: Path | None,
                     output: Path | None, json_path: Path | None, target: str | None, gate_rules: tuple[str, ...],
                     sensitive: tuple[str, ...], metadata_path: Path | None, seed: int, quiet: bool,
                     **image_options: Any) -> None:
    """Score fidelity and privacy of SYNTHETIC against REAL, optionally for MODEL.

    Tables: REAL, SYNTHETIC and HOLDOUT are table files. Images: folders (or .npz); with an image
    MODEL the real images are read the way fit read them and SYNTHETIC is what `synthgen sample`
    wrote (any --format). Image scores use features of a small CNN trained on the real training
    images (no downloaded weights): Frechet distance, KID, precision/recall/density/coverage,
    label accuracy, train-on-synthetic accuracy, and nearest-neighbour memorisation checks.

    Prints a summary, writes HTML/JSON when asked, and exits with status 0 when every gate
    passes, 3 when any gate fails, 4 when none fails but one is inconclusive (too little evidence,
    e.g. no holdout: never a pass), and 1 for errors, so it can guard a release in CI. The default
    privacy gates are one-sided tests at alpha 0.002 against what fresh real (holdout) rows score,
    each with a tolerance.
    """
    from synthgen.evaluation import Gate, evaluate
    from synthgen.evaluation.gates import DEFAULT_GATES
    from synthgen.image_synthesizer import ImageSynthesizer
    from synthgen.io import read_table
    from synthgen.loading import load
    from synthgen.metadata import Metadata
    inputs = [model, real_path, synthetic_path, holdout_path, metadata_path, image_options.get("labels_path")]
    for option, path in (("-o", output), ("--json", json_path)):  # before any scoring
        if path is not None:
            check_output(path, inputs=inputs, option=option)
            inputs.append(path)  # -o and --json may not name one file either
    synthesizer = load(model, device="cpu") if model is not None else None
    if isinstance(synthesizer, ImageSynthesizer) or (synthesizer is None and _is_image_input(real_path)):
        if target or metadata_path or sensitive:
            raise InvalidArgumentError("--target, --metadata and --sensitive apply to tables, not images")
        report = _evaluate_images(synthesizer, real_path, synthetic_path, holdout_path, image_options,
                                  [Gate.parse(rule) for rule in gate_rules], seed, quiet)
        _finish_report(report, output, json_path)
        return
    if any(value is not None for value in image_options.values()):
        raise InvalidArgumentError("--labels, --label-column, --label-tag, --image-size, --window and --reader apply to images")
    real = read_table(real_path)
    holdout = read_table(holdout_path) if holdout_path else None
    metadata = Metadata.load(metadata_path) if metadata_path else None
    context: dict[str, object] = {"data source": str(real_path), "synthetic source": str(synthetic_path)}
    if synthesizer is not None:
        details = synthesizer.describe()
        metadata = metadata or synthesizer.metadata_
        if holdout is None:
            real, holdout = synthesizer.split(real)
        context["generator"] = {key: details[key] for key in ("kind", "synthgen_version", "seed", "config", "training")}
        privacy = details["training"].get("privacy")
        if privacy:
            context["dp statement"] = dp_statement(privacy)
            context["privacy unit"] = privacy["privacy_unit"]
    user_gates = [Gate.parse(rule) for rule in gate_rules]
    replaced = {gate.metric for gate in user_gates}
    gates = [gate for gate in DEFAULT_GATES if gate.metric not in replaced] + user_gates
    report = evaluate(real, read_table(synthetic_path), holdout=holdout, metadata=metadata, target=target,
                      gates=gates, seed=seed, sensitive=list(sensitive) or None, context=context, progress=not quiet)
    _finish_report(report, output, json_path)


def _evaluate_images(synthesizer: ImageSynthesizer | None, real_path: Path, synthetic_path: Path,
                     holdout_path: Path | None, image_options: dict[str, Any], user_gates: list[Gate], seed: int,
                     quiet: bool) -> Any:
    """The image evaluation: real images read as fit read them, synthetic ones as sample wrote them."""
    from synthgen.data.images import read_images
    from synthgen.evaluation.images import IMAGE_GATES, evaluate_images
    from synthgen.image_io import read_written_images
    context: dict[str, object] = {"data source": str(real_path), "synthetic source": str(synthetic_path)}
    if synthesizer is not None:
        given = {key: value for key, value in _read_images(real_path, image_options)[1].items()
                 if image_options.get("labels_path" if key == "labels" else key) is not None}
        reading = {**synthesizer.reading_, **given}
        real = read_images(real_path, **reading)
        if holdout_path is None:
            real, holdout = synthesizer.split(real)
        else:
            holdout = read_images(holdout_path, **reading)
        synthetic = read_written_images(synthetic_path, synthesizer.mapping_, synthesizer.image_size_,
                                        synthesizer.label_name_)
        details = synthesizer.describe()
        context["generator"] = {key: details[key] for key in ("kind", "synthgen_version", "seed", "config", "training")}
    else:
        real, reading = _read_images(real_path, image_options)
        holdout = read_images(holdout_path, **reading) if holdout_path else None
        synthetic = read_images(synthetic_path, **reading)
    replaced = {gate.metric for gate in user_gates}
    gates = [gate for gate in IMAGE_GATES if gate.metric not in replaced] + user_gates
    return evaluate_images(real, synthetic, holdout=holdout, seed=seed, gates=gates, context=context,
                           progress=not quiet)


def _finish_report(report: Any, output: Path | None, json_path: Path | None) -> None:
    """Print the summary, write the files asked for, and exit 3 when a gate fails, 4 when one is inconclusive."""
    click.echo(report.summary())
    if output:
        report.to_html(output)
        click.echo(f"Wrote {output}")
    if json_path:
        report.to_json(json_path)
        click.echo(f"Wrote {json_path}")
    if report.verdict == "FAIL":
        raise SystemExit(GATE_FAILED_EXIT)
    if report.verdict != "PASS":
        raise SystemExit(GATE_INCONCLUSIVE_EXIT)


@main.command("augment")
@click.argument("data", type=_PATH)
@click.option("--target",
              help="Column to predict: its classes get the synthetic rows (numerical: regression). "
                   "Images: the label (optional; it must name the label column).")
@click.option("-o", "--output", type=_PATH,
              help="Augmented table to write (.csv, .tsv or .parquet): DATA's rows, then the synthetic rows.")
@click.option("--balance", is_flag=True, help="Top every class up to the majority class's count.")
@click.option("--ratio", type=float, metavar="R",
              help="Grow the table to R times its rows (R > 1), keeping the class mix.")
@click.option("--model", "model_path", type=_PATH,
              help="A model fitted on a table with DATA's columns. [default: fit one on DATA]")
@click.option("--check", "check_path", type=_PATH, metavar="TEST",
              help="Real rows kept out of DATA: train a classifier with and without the synthetic rows, "
                   "score both on TEST.")
@click.option("--classifier", type=click.Choice(CLASSIFIERS), default=CLASSIFIERS[0], show_default=True,
              help="Model trained by --check (for a numerical target: the regressor of that family, "
                   "ridge for the linear one).")
@click.option("--check-seeds", type=click.IntRange(min=2), default=5, show_default=True,
              help="Repeats of --check, each with fresh synthetic rows; intervals are over these.")
@click.option("--seed", type=int, help="Random seed for fitting and sampling.")
@click.option("--steps", type=click.IntRange(min=1),
              help="Optimiser steps when fitting. [default: from table size, 3,000-10,000]")
@click.option("--min-category-count", type=click.IntRange(min=1),
              help="Categories seen fewer times are pooled and not generated. [default: 5, lowered to the "
                   "smallest class count (at least 2) with a warning, so every class can be generated]")
@click.option("--flag-column", default=SYNTHETIC_FLAG, show_default=True,
              help="Boolean column marking synthetic rows (True); '' for none.")
@click.option("--format", "image_format", type=click.Choice(IMAGE_FORMATS),
              help="Images: write the augmented set as DICOM, PNG or .npz. [default: png]")
@_image_options
@click.option("--quiet", is_flag=True, help="No progress bar.")
@_friendly_errors
def augment_command(data: Path, target: str | None, output: Path | None, balance: bool, ratio: float | None,
                    model_path: Path | None, check_path: Path | None, classifier: str, check_seeds: int,
                    seed: int | None, steps: int | None, min_category_count: int | None, flag_column: str,
                    image_format: str | None, quiet: bool, **image_options: Any) -> None:
    """Add synthetic rows for TARGET to DATA: balance its classes or grow it by a ratio.

    Rows are generated through the model's conditioning on TARGET, and any synthetic row identical
    to a real row is replaced. With --check TEST (real rows not in DATA) it measures whether the
    synthetic rows help a classifier on TEST; without -o it only measures.

    Images (a folder or .npz as DATA, labels as for `fit`): the output folder holds the real and
    the synthetic images, with a `synthetic` column in its labels.csv; --check TEST is a folder of
    real test images, scored with a small CNN.

    \b
    synthgen augment train.csv --target diagnosis --balance -o augmented.csv --seed 1
    synthgen augment train.csv --target diagnosis --ratio 2 --check test.csv
    synthgen augment ./images/ --labels labels.csv --label-column finding --balance -o ./augmented/
    """
    from synthgen.augmentation import augment, check_augmentation, check_request, fit_for_augmentation
    from synthgen.io import TableWriter, read_table
    from synthgen.loading import load
    if output is None and check_path is None:
        raise InvalidArgumentError(
            "nothing to do: give -o OUT to write the augmented data, --check TEST to measure, or both"
        )
    if output is not None:  # before any fitting
        check_output(output, inputs=[data, model_path, check_path, image_options.get("labels_path")],
                     directory=_is_image_input(data))
    if _is_image_input(data):
        if min_category_count is not None or classifier != CLASSIFIERS[0]:
            raise InvalidArgumentError("--min-category-count and --classifier apply to tables, not images")
        _augment_images(data, target, output, balance, ratio, model_path, check_path, check_seeds, seed, steps,
                        image_format or "png", image_options, quiet)
        return
    if target is None:
        raise InvalidArgumentError("--target is required for a table: the column whose classes get synthetic rows")
    if image_format is not None or any(value is not None for value in image_options.values()):
        raise InvalidArgumentError("--format, --labels, --label-column, --label-tag, --image-size, --window and "
                                   "--reader apply to images")
    table = read_table(data)
    test = read_table(check_path) if check_path else None
    flag = flag_column or None
    synthesizer = None
    if model_path is not None:
        if steps is not None or min_category_count is not None:
            raise InvalidArgumentError(
                "--steps and --min-category-count apply when fitting; leave them out with --model"
            )
        synthesizer = load(model_path)
    check_request(table, target, balance=balance, ratio=ratio, model=synthesizer, flag_column=flag,
                  steps=steps, min_category_count=min_category_count)
    if synthesizer is None:
        synthesizer = fit_for_augmentation(table, target, seed=seed, steps=steps,
                                           min_category_count=min_category_count, progress=not quiet)
    reported: list[Any] = []  # the first augmented table: its attrs say what was added

    def augmented(repeat: int | None, flag_name: str | None) -> Any:
        rows_seed = seed if repeat is None or seed is None else seed + 1 + repeat
        rows = augment(table, target, balance=balance, ratio=ratio, model=synthesizer, seed=rows_seed,
                       flag_column=flag_name, progress=not quiet)
        if not reported:
            reported.append(rows)
        return rows

    result = augmented(None, flag) if output is not None else None
    check = None
    if test is not None:  # before writing: a failed check leaves no output file behind
        check = check_augmentation(
            table, test, target, augmented_factory=lambda repeat: augmented(repeat, None),
            classifier=classifier, seeds=check_seeds, metadata=synthesizer.metadata_,
        )
    if result is not None:
        with TableWriter(output) as writer:
            writer.write(result)
    added = reported[0].attrs["synthgen_augment"]
    mode = "balance" if balance else f"ratio {ratio:g}"
    per_class = added["task"] == "classification"
    click.echo(f"{'Added' if output is not None else 'Each --check repeat adds'} {added['synthetic_rows']} synthetic "
               f"rows to {added['real_rows']} real rows ({mode}, target {target!r})" + (":" if per_class else ""))
    if per_class:
        real_counts = table[target].value_counts()
        for label, count in added["added"].items():
            click.echo(f"  {label}: {int(real_counts[label])} real + {count} synthetic")
    click.echo(f"{added['exact_copies']} synthetic rows identical to a real row "
               f"({added['exact_copies_dropped']} generated copies dropped and resampled)")
    if added["shortfall"]:
        click.echo(f"{added['shortfall']} requested rows could not be generated without copying a real row")
    if output is not None:
        marker = f"; synthetic rows have {flag}=True" if flag else ""
        click.echo(f"Wrote {output}: {writer.rows} rows{marker}")
    if check is not None:
        task = "regressor" if check.task == "regression" else "classifier"
        click.echo(f"\nCheck on {check_path} ({check.test_rows} real rows; synthetic rows are never scored): "
                   f"{check.classifier} {task} trained on the {check.train_rows} real rows alone vs with synthetic "
                   f"rows, {check.seeds} seeds, mean [95% interval]")
        click.echo(check.table())


def _test_reading(check_path: Path, reading: dict[str, Any]) -> dict[str, Any]:
    """How to read --check images: as the training images, with a labels CSV of the same name inside TEST."""
    if reading["labels"] is None:
        return reading
    own = check_path / Path(reading["labels"]).name
    if not own.is_file():
        raise InvalidArgumentError(f"--check {str(check_path)!r}: its labels go in {str(own)!r}, with the columns of --labels")
    return {**reading, "labels": str(own)}


def _augment_images(data: Path, target: str | None, output: Path | None, balance: bool, ratio: float | None,
                    model_path: Path | None, check_path: Path | None, check_seeds: int, seed: int | None,
                    steps: int | None, image_format: str, image_options: dict[str, Any], quiet: bool) -> None:
    from synthgen.data.images import read_images
    from synthgen.image_augmentation import augment_images, check_image_augmentation, plan as plan_images
    from synthgen.image_io import write_images
    from synthgen.image_synthesizer import ImageSynthesizer
    from synthgen.loading import load
    images, reading = _read_images(data, image_options)
    if target is not None and target != images.label_name:
        raise InvalidArgumentError(f"--target {target!r}: these images' label is {images.label_name!r}")
    plan_images(images.labels, balance=balance, ratio=ratio)  # refuse a bad request before any fitting
    if model_path is not None:
        if steps is not None:
            raise InvalidArgumentError("--steps applies when fitting; leave it out with --model")
        model = load(model_path)
        if not isinstance(model, ImageSynthesizer):
            raise InvalidArgumentError(f"{str(model_path)!r} is a {model.kind} model; image augmentation needs an image model")
    else:
        model = ImageSynthesizer(seed=seed, steps=steps, progress=not quiet).fit(images, reading=reading)
    result = augment_images(images, balance=balance, ratio=ratio, model=model, seed=seed)
    check = None
    if check_path is not None:  # before writing: a failed check leaves no output behind
        test = read_images(check_path, **_test_reading(check_path, reading))
        check = check_image_augmentation(
            images, test, seeds=check_seeds,
            augmented_factory=lambda repeat: augment_images(
                images, balance=balance, ratio=ratio, model=model,
                seed=None if seed is None else seed + 1 + repeat).images,
        )
    if output is not None:
        write_images(result.images, output, image_format, synthetic=result.synthetic)
    mode = "balance" if balance else f"ratio {ratio:g}"
    click.echo(f"{'Added' if output is not None else 'Each --check repeat adds'} {int(result.synthetic.sum())} "
               f"synthetic images to {len(images)} real images ({mode}):")
    real_counts = dict(zip(*np.unique(np.asarray(images.labels, dtype=str), return_counts=True)))
    for label, count in result.added.items():
        click.echo(f"  {label or '(unlabelled)'}: {int(real_counts.get(label, 0))} real + {count} synthetic")
    click.echo(f"0 synthetic images identical to a real one ({result.exact_copies_dropped} generated copies "
               "dropped and resampled)")
    if result.shortfall:
        click.echo(f"{result.shortfall} requested images could not be generated without copying a real one")
    if output is not None:
        click.echo(f"Wrote {output} ({image_format}); labels.csv marks synthetic images with synthetic=True")
    if check is None:
        # Measured on scikit-learn's digits (10 or 3 images per class, 16 px, CPU budget): synthetic
        # images did not help and, for the imbalanced set, hurt. So say so whenever nothing was measured.
        click.echo("Not measured: run again with --check TEST (real images kept out of DATA) before training on this "
                   "set; on small image sets synthetic images have hurt a classifier (benchmarks/README.md).", err=True)
    if check is not None:
        click.echo(f"\nCheck on {check_path} ({check.test_rows} real images; synthetic images are never scored): "
                   f"small CNN trained on the {check.train_rows} real images alone vs with synthetic images, "
                   f"{check.seeds} seeds, mean [95% interval]")
        click.echo(check.table())


@main.command("metadata")
@click.argument("data", type=_PATH)
@click.option("-o", "--output", type=_PATH, required=True, help="JSON file to write.")
@_friendly_errors
def metadata_command(data: Path, output: Path) -> None:
    """Detect DATA's column kinds and write them as editable SDV-style metadata JSON."""
    from synthgen.io import read_table
    from synthgen.metadata import Metadata
    check_output(output, inputs=[data])
    detected = Metadata.detect(read_table(data))
    detected.save(output)
    click.echo(f"Wrote {output}: {detected!r}")


@main.command()
@click.option("--dataset", type=click.Choice(EXAMPLE_TABLES), default="breast-cancer", show_default=True,
              help="A table that ships with scikit-learn (nothing is downloaded).")
@click.option("-o", "--output-dir", type=_PATH, default=Path("synthgen-demo"), show_default=True)
@click.option("-n", "--num-rows", type=click.IntRange(min=1), default=10_000, show_default=True)
@click.option("--steps", type=click.IntRange(min=1), help="Optimiser steps. [default: from table size]")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--quiet", is_flag=True, help="No progress bar.")
@_friendly_errors
def demo(dataset: str, output_dir: Path, num_rows: int, steps: int | None, seed: int, quiet: bool) -> None:
    """The whole job on an embedded table: split 80/20, fit, save, sample, score fidelity."""
    from synthgen.datasets import load_example
    from synthgen.evaluation.fidelity import quality_scores
    from synthgen.io import TableWriter
    from synthgen.synthesizer import TabularSynthesizer
    train, holdout = load_example(dataset, seed=seed)
    synthesizer = TabularSynthesizer(seed=seed, steps=steps, progress=not quiet).fit(train)
    output_dir.mkdir(parents=True, exist_ok=True)
    synthesizer.save(output_dir / "model.sgz")
    synthetic = synthesizer.sample(num_rows, seed=seed)
    with TableWriter(output_dir / "synthetic.csv") as writer:
        writer.write(synthetic)
    summary = synthesizer.training_
    click.echo(f"{dataset}: {len(train)} training rows, {len(holdout)} held out; {summary['steps']} steps "
               f"in {summary['seconds']:.1f} s on {summary['device']}")
    click.echo(f"Wrote {output_dir / 'model.sgz'} and {num_rows} rows to {output_dir / 'synthetic.csv'}")
    # The holdout is what fresh real patients score: the attainable ceiling for each property.
    attainable = quality_scores(train, holdout, synthesizer.metadata_)
    click.echo("sdmetrics QualityReport against the training split (1.0 = identical):")
    click.echo(f"  {'property':<32} {'synthetic':>9} {'holdout':>9}")
    for name, score in quality_scores(train, synthetic, synthesizer.metadata_).items():
        click.echo(f"  {name:<32} {score:>9.3f} {attainable[name]:>9.3f}")
