"""``synthgen evaluate``: the fidelity and privacy report of a synthetic table or image set, and its gates' exit code."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from synthgen._files import check_output
from synthgen.cli.common import (
    PATH, friendly_errors, image_options, is_image_input, read_image_folder, refuse, refuse_image_options,
)
from synthgen.dp.accounting import statement as dp_statement
from synthgen.errors import InvalidArgumentError

if TYPE_CHECKING:  # the command imports the API when it runs, so --help loads no torch
    from synthgen.evaluation import Gate
    from synthgen.synthesizers.images import ImageSynthesizer


#: Exit code of `synthgen evaluate` when the report is written but a gate fails (1 = an error).
GATE_FAILED_EXIT = 3
#: Exit code of `synthgen evaluate` when no gate fails but one is inconclusive (too little evidence).
GATE_INCONCLUSIVE_EXIT = 4


@click.command("evaluate")
@click.argument("model", type=PATH, required=False)
@click.option("--real", "real_paths", type=PATH, required=True, multiple=True,
              help="The real table. With MODEL: the file given to fit (its --holdout rows are split off again); "
                   "a two-table model: --real PARENT --real CHILD, or a folder holding <parent>.csv and <child>.csv.")
@click.option("--synthetic", "synthetic_paths", type=PATH, required=True, multiple=True,
              help="The synthetic table to judge; a two-table model: the folder `synthgen sample` wrote (or two files).")
@click.option("--holdout", "holdout_paths", type=PATH, multiple=True,
              help="Real rows never used for training (about as many as --real); two tables: as --real.")
@click.option("-o", "--output", type=PATH, help="Write the self-contained HTML report here.")
@click.option("--json", "json_path", type=PATH, help="Write the report as JSON here.")
@click.option("--target", help="Column to predict for the machine-learning utility test (needs a holdout).")
@click.option("--gate", "gate_rules", multiple=True, metavar="RULE",
              help="Pass/fail rule such as dcr_share<=0.52, or a test against the null of fresh real rows such as "
                   "dcr_share<=null+0.05@0.002 (fails when p < 0.002 and the excess over the null is above 0.05); "
                   "replaces the default of that metric. Repeatable.")
@click.option("--sensitive", "sensitive", multiple=True, metavar="COLUMN",
              help="A column an attacker may want to infer (attribute inference tries only these; default: every "
                   "column). Repeatable.")
@click.option("--metadata", "metadata_path", type=PATH, help="SDV metadata JSON (default: MODEL's, else detected).")
@click.option("--entity-column", help="Patient histories without MODEL: the column naming each patient of a long "
                                      "table (many rows per patient); patients are scored whole (needs --holdout).")
@click.option("--sequence-index", help="With --entity-column: the column ordering each patient's rows (a visit "
                                       "number, day or date).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for subsampling and attacks.")
@image_options
@click.option("--quiet", is_flag=True, help="No progress bar.")
@friendly_errors
def evaluate_command(model: Path | None, real_paths: tuple[Path, ...], synthetic_paths: tuple[Path, ...],
                     holdout_paths: tuple[Path, ...], output: Path | None, json_path: Path | None, target: str | None,
                     gate_rules: tuple[str, ...], sensitive: tuple[str, ...], metadata_path: Path | None,
                     entity_column: str | None, sequence_index: str | None, seed: int, quiet: bool,
                     **image_options: Any) -> None:
    """Score fidelity and privacy of SYNTHETIC against REAL, optionally for MODEL.

    Tables: REAL, SYNTHETIC and HOLDOUT are table files. Images: folders (or .npz); with an image
    MODEL the real images are read the way fit read them and SYNTHETIC is what `synthgen sample`
    wrote (any --format). Image scores use features of a small CNN trained on the real training
    images (no downloaded weights): Frechet distance, KID, precision/recall/density/coverage,
    label accuracy, train-on-synthetic accuracy, and nearest-neighbour memorisation checks.

    A MODEL fitted on two tables (a parent and a child): --real PARENT --real CHILD as fit read
    them, --synthetic the folder `synthgen sample` wrote; each pair is joined by the model's layout
    and scored patient by patient, like a long-table history model.

    Patient histories from any generator (no MODEL): --entity-column ID [--sequence-index DAY]
    and --holdout (real patients never used); static columns are those declared "static" in
    --metadata, else those constant within every real patient.

    Prints a summary, writes HTML/JSON when asked, and exits with status 0 when every gate
    passes, 3 when any gate fails, 4 when none fails but one is inconclusive (too little evidence,
    e.g. no holdout: never a pass), and 1 for errors, so it can guard a release in CI. The default
    privacy gates are one-sided tests at alpha 0.002 against what fresh real (holdout) rows score,
    each with a tolerance.
    """
    from synthgen.evaluation import Gate, evaluate
    from synthgen.evaluation.gates import DEFAULT_GATES
    from synthgen.io import read_table
    from synthgen.loading import load
    from synthgen.metadata import Metadata
    from synthgen.synthesizers.images import ImageSynthesizer
    synthesizer = load(model, device="cpu") if model is not None else None
    if sequence_index is not None and entity_column is None:
        raise InvalidArgumentError("--sequence-index orders each patient's rows: give --entity-column as well")
    if entity_column is not None and synthesizer is not None:
        _check_entity_column(synthesizer, entity_column, sequence_index)
        entity_column = sequence_index = None  # the model's schema says the same
    layout = getattr(synthesizer, "tables_", None)
    if layout is not None:  # a model of two tables: --real, --synthetic and --holdout each name a pair
        refuse_image_options(image_options)
        refuse(("--target", "--metadata"), bool(target or metadata_path), "one-row-per-patient tables")
        pairs = {option: _table_pair(paths, option, layout) for option, paths in
                 (("--real", real_paths), ("--synthetic", synthetic_paths), ("--holdout", holdout_paths)) if paths}
        _check_outputs(output, json_path, [model, *(path for pair in pairs.values() for path in pair)])
        _finish_report(_evaluate_two_tables(synthesizer, pairs, gate_rules, sensitive, seed), output, json_path)
        return
    real_path, synthetic_path = _one(real_paths, "--real"), _one(synthetic_paths, "--synthetic")
    holdout_path = _one(holdout_paths, "--holdout") if holdout_paths else None
    _check_outputs(output, json_path, [model, real_path, synthetic_path, holdout_path, metadata_path,
                                       image_options.get("labels_path")])
    if isinstance(synthesizer, ImageSynthesizer) or (synthesizer is None and is_image_input(real_path)):
        refuse(("--target", "--metadata", "--sensitive", "--entity-column"),
               bool(target or metadata_path or sensitive or entity_column), "tables, not images")
        report = _evaluate_images(synthesizer, real_path, synthetic_path, holdout_path, image_options,
                                  [Gate.parse(rule) for rule in gate_rules], seed, quiet)
        _finish_report(report, output, json_path)
        return
    refuse_image_options(image_options)
    if synthesizer is not None and synthesizer.kind == "sequence":
        refuse(("--target", "--metadata"), bool(target or metadata_path), "one-row-per-patient tables")
        report = _evaluate_histories(synthesizer, real_path, synthetic_path, holdout_path, gate_rules, sensitive, seed)
        _finish_report(report, output, json_path)
        return
    if entity_column is not None:
        refuse(("--target",), bool(target), "one-row-per-patient tables")
        report = _evaluate_long_tables(real_path, synthetic_path, holdout_path, entity_column, sequence_index,
                                       metadata_path, gate_rules, sensitive, seed)
        _finish_report(report, output, json_path)
        return
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


def _one(paths: tuple[Path, ...], option: str) -> Path:
    """The one path of an option that takes two only for a model fitted on two tables."""
    if len(paths) != 1:
        raise InvalidArgumentError(f"{option} is given {len(paths)} times: two (a parent and a child table) are for a "
                                   "model fitted on two tables; give one table here")
    return paths[0]


def _table_pair(paths: tuple[Path, ...], option: str, layout: Any) -> tuple[Path, Path]:
    """(parent file, child file) of an option: two files in that order, as fit took them, or one folder."""
    from synthgen.sequences.tables import table_files
    if len(paths) == 1 and paths[0].is_dir():
        return table_files(paths[0], layout)
    if len(paths) != 2:
        raise InvalidArgumentError(f"{option}: this model learned two tables; give {option} twice, the "
                                   f"{layout.parent!r} table then the {layout.child!r} table, or once, a folder "
                                   f"holding {layout.parent}.csv and {layout.child}.csv")
    return paths[0], paths[1]


def _check_outputs(output: Path | None, json_path: Path | None, inputs: list[Path | None]) -> None:
    """Refuse -o and --json before any scoring: neither may be an input, nor name one file."""
    for option, path in (("-o", output), ("--json", json_path)):
        if path is not None:
            check_output(path, inputs=inputs, option=option)
            inputs.append(path)


def _history_gates(gate_rules: tuple[str, ...]) -> list[Gate]:
    """The default gates, less those a --gate rule replaces, then the rules."""
    from synthgen.evaluation import Gate
    from synthgen.evaluation.gates import DEFAULT_GATES
    user_gates = [Gate.parse(rule) for rule in gate_rules]
    replaced = {gate.metric for gate in user_gates}
    return [gate for gate in DEFAULT_GATES if gate.metric not in replaced] + user_gates


def _evaluate_histories(synthesizer: Any, real_path: Path, synthetic_path: Path, holdout_path: Path | None,
                        gate_rules: tuple[str, ...], sensitive: tuple[str, ...], seed: int) -> Any:
    """Patient histories: the model's holdout patients (or --holdout), scored patient by patient."""
    from synthgen.io import read_table
    from synthgen.sequences.report import evaluate_synthesizer
    return evaluate_synthesizer(
        synthesizer, read_table(real_path), read_table(synthetic_path),
        read_table(holdout_path) if holdout_path else None, gates=_history_gates(gate_rules), seed=seed,
        sensitive=list(sensitive) or None,
        context={"data source": str(real_path), "synthetic source": str(synthetic_path)})


def _check_entity_column(synthesizer: Any, entity_column: str, sequence_index: str | None) -> None:
    """With a MODEL, --entity-column may only repeat what the model learned."""
    schema = getattr(synthesizer, "schema_", None) if getattr(synthesizer, "kind", None) == "sequence" else None
    if schema is None:
        raise InvalidArgumentError("--entity-column is for patient histories; MODEL learned one row per patient")
    for option, given, learned in (("--entity-column", entity_column, schema.entity_column),
                                   ("--sequence-index", sequence_index, schema.sequence_index)):
        if given is not None and given != learned:
            raise InvalidArgumentError(f"{option} {given!r} contradicts MODEL, which learned {learned!r}; "
                                       f"leave {option} out to use the model's")


def _evaluate_long_tables(real_path: Path, synthetic_path: Path, holdout_path: Path | None, entity_column: str,
                          sequence_index: str | None, metadata_path: Path | None, gate_rules: tuple[str, ...],
                          sensitive: tuple[str, ...], seed: int) -> Any:
    """Patient histories without a model: whole patients of --synthetic against --real and --holdout."""
    from synthgen.io import read_table
    from synthgen.metadata import Metadata
    from synthgen.sequences.report import evaluate_long_tables
    if holdout_path is None:
        raise InvalidArgumentError("patient histories without MODEL need --holdout: real patients never used to make "
                                   "the synthetic ones, the reference for every score and the privacy tests")
    return evaluate_long_tables(
        read_table(real_path), read_table(synthetic_path), read_table(holdout_path), entity_column=entity_column,
        sequence_index=sequence_index, metadata=Metadata.load(metadata_path) if metadata_path else None,
        gates=_history_gates(gate_rules), seed=seed, sensitive=list(sensitive) or None,
        context={"data source": str(real_path), "synthetic source": str(synthetic_path)})


def _evaluate_two_tables(synthesizer: Any, pairs: dict[str, tuple[Path, Path]], gate_rules: tuple[str, ...],
                         sensitive: tuple[str, ...], seed: int) -> Any:
    """Patient histories from two tables: each pair joined by the model's layout, then scored as one long table."""
    from synthgen.sequences.report import evaluate_two_tables
    return evaluate_two_tables(
        synthesizer, pairs["--real"], pairs["--synthetic"], pairs.get("--holdout"), gates=_history_gates(gate_rules),
        seed=seed, sensitive=list(sensitive) or None,
        context={"data source": " + ".join(map(str, pairs["--real"])),
                 "synthetic source": " + ".join(map(str, pairs["--synthetic"]))})


def _evaluate_images(synthesizer: ImageSynthesizer | None, real_path: Path, synthetic_path: Path,
                     holdout_path: Path | None, image_options: dict[str, Any], user_gates: list[Gate], seed: int,
                     quiet: bool) -> Any:
    """The image evaluation: real images read as fit read them, synthetic ones as sample wrote them."""
    from synthgen.evaluation.images.evaluate import IMAGE_GATES, evaluate_images
    from synthgen.images.io import read_written_images
    from synthgen.images.reading import read_images
    context: dict[str, object] = {"data source": str(real_path), "synthetic source": str(synthetic_path)}
    if synthesizer is not None:
        given = {key: value for key, value in read_image_folder(real_path, image_options)[1].items()
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
        real, reading = read_image_folder(real_path, image_options)
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
