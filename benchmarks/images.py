"""Image benchmark (issues 5 and 7): the conditional image GAN on digits and CT phantoms, and augmentation.

    python benchmarks/images.py --json benchmarks/results/2026-11-25-images.json --write-readme
    python benchmarks/images.py --part digits --json ...     # or phantoms, augment; results merge into --json
    python benchmarks/images.py --from-json benchmarks/results/2026-11-25-images.json --write-readme

Nothing is downloaded: scikit-learn's ``load_digits`` ships with scikit-learn, and the phantoms are
drawn by ``tests/phantoms.py``. Everything runs on the CPU with one torch/OpenMP thread.

* ``digits``: the 1,797 8×8 digits (values 0..16, 10 classes) as an ImageSet in "pixel" units
  (``IntensityMapping(0, 16)``), upsampled to 16 px (the image GAN's smallest size) with the same
  antialiased bilinear resize synthgen's readers use. Split 80/20 stratified (seed 0). One
  ``ImageSynthesizer`` fit (synthgen's defaults at 16 px), as many samples as the holdout with each
  class's count, scored by ``evaluate_images(train, synthetic, holdout=holdout)``.
* ``phantoms``: ``phantom_images(600, 64, seed=0)`` (lesion / normal) in HU through the CT
  soft-tissue window (40, 400), i.e. ``IntensityMapping(-160, 240, "HU", "CT")``; same split and
  measures. The time per optimiser step is first measured at base widths 32, 16 and 8, and the fit
  uses a width and step count that fit about 8 minutes of one CPU thread (``--phantom-*``).
* ``augment``: digits at 16 px; per draw (``--draws``), 10 real images per class train (stratified
  draw, seed = draw) and every other image is the test set. Balanced: real only vs real + ratio 2.
  Imbalanced: 10 images of classes 0-4 and 3 of classes 5-9 (a subset of the same draw, same test
  set): real only vs ``balance`` vs ratio 2. One image GAN per training set; the classifier is
  ``check_image_augmentation``'s (the evaluation's small CNN, its default steps), trained with
  ``--classifier-seeds`` seeds per draw, each augmented set drawn with its own sampling seed.
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import argparse  # noqa: E402
import base64  # noqa: E402
import copy  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import platform  # noqa: E402
import re  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from dataclasses import asdict  # noqa: E402
from datetime import datetime, timezone  # noqa: E402
from importlib.metadata import version  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.metrics import balanced_accuracy_score, recall_score  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402
from torch.nn import functional as F  # noqa: E402

from synthgen.augmentation.check import Interval, compare_runs, macro_roc_auc  # noqa: E402
from synthgen.images.types import ImageSet, IntensityMapping  # noqa: E402
from synthgen.evaluation.images.evaluate import evaluate_images  # noqa: E402
from synthgen.evaluation.images.features import FeatureExtractor  # noqa: E402
from synthgen.evaluation.images.grids import grid_png  # noqa: E402
from synthgen.augmentation.images import augment_images  # noqa: E402
from synthgen.synthesizers.images import ImageSynthesizer  # noqa: E402
from synthgen.models.image_gan import ImageDiscriminator, ImageGANConfig, ImageGenerator, init_weights  # noqa: E402
from synthgen.training.images import default_image_steps, train_image_gan  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from phantoms import phantom_images  # noqa: E402

README = Path(__file__).resolve().parent / "README.md"
BEGIN, END = "<!-- images:begin -->", "<!-- images:end -->"
PARTS = ("digits", "phantoms", "augment", "augment-defaults")
DEFAULT_PARTS = ("digits", "phantoms", "augment")  # what --part all runs
DIGITS_MAPPING = IntensityMapping(low=0, high=16, unit="pixel")
SOFT_TISSUE = (40.0, 400.0)  # CT window (centre, width) in HU
PHANTOM_MAPPING = IntensityMapping(low=SOFT_TISSUE[0] - SOFT_TISSUE[1] / 2, high=SOFT_TISSUE[0] + SOFT_TISSUE[1] / 2,
                                   unit="HU", modality="CT")
SCORE_NAMES = ("FD", "KID", "Precision", "Recall", "Density", "Coverage", "Sample accuracy", "TSTR accuracy",
               "Memorisation share (pixels)", "Memorisation share (features)", "Near-duplicate share")
MINORITY = [str(c) for c in range(5, 10)]  # the rare classes of the imbalanced augmentation variant
JUDGE_STEPS, JUDGE_PER_CLASS = 400, 20  # augment: the label judge's training steps; synthetic images it judges per class


# ---------------------------------------------------------------------------------------------- data
def digits_images(side: int = 16) -> ImageSet:
    """scikit-learn's digits (values 0..16) as an ImageSet, upsampled from 8 px to ``side`` px."""
    digits = load_digits()
    unit = DIGITS_MAPPING.to_unit(digits.images.astype(np.float32))[:, None]
    # As synthgen's readers and ImageSynthesizer resize: antialiased bilinear, kept in [-1, 1].
    upsampled = F.interpolate(torch.from_numpy(unit), size=(side, side), mode="bilinear", antialias=True,
                              align_corners=False).clamp(-1, 1).numpy()
    return ImageSet(upsampled, digits.target.astype(str), DIGITS_MAPPING, "digit")


def phantom_set(n: int, side: int, seed: int = 0) -> ImageSet:
    hu, labels = phantom_images(n, side, seed)
    return ImageSet(PHANTOM_MAPPING.to_unit(hu)[:, None], labels, PHANTOM_MAPPING, "finding")


def subset(images: ImageSet, index: np.ndarray) -> ImageSet:
    return ImageSet(images.images[index], images.labels[index], images.mapping, images.label_name)


def split(images: ImageSet, seed: int = 0) -> tuple[ImageSet, ImageSet]:
    """80/20, stratified by label (scikit-learn ``train_test_split``, ``random_state=seed``)."""
    train, hold = train_test_split(np.arange(len(images)), test_size=0.2, stratify=images.labels, random_state=seed)
    return subset(images, np.sort(train)), subset(images, np.sort(hold))


def counts(labels: np.ndarray) -> dict[str, int]:
    classes, number = np.unique(np.asarray(labels, dtype=str), return_counts=True)
    return {str(c): int(k) for c, k in zip(classes, number)}


# ---------------------------------------------------------------------------------------------- timing
def seconds_per_step(train: ImageSet, config: ImageGANConfig, steps: int) -> float:
    """Training-loop seconds per optimiser step of ``config`` on ``train`` (after one warm-up step)."""
    classes, index = np.unique(train.labels.astype(str), return_inverse=True)
    config = ImageGANConfig(**{**asdict(config), "image_size": train.images.shape[-1], "n_classes": len(classes)})
    generator, critic = ImageGenerator(config), ImageDiscriminator(config)
    rng = torch.Generator().manual_seed(0)
    init_weights(generator, rng)
    init_weights(critic, rng)
    ema = copy.deepcopy(generator)
    images, labels = torch.from_numpy(train.images), torch.from_numpy(index.astype(np.int64))
    warm = ImageGANConfig(**{**asdict(config), "steps": 1})
    train_image_gan(generator, critic, ema, images, labels, warm, rng, progress=False)
    timed = ImageGANConfig(**{**asdict(config), "steps": steps})
    return train_image_gan(generator, critic, ema, images, labels, timed, rng, progress=False).seconds / steps


# ---------------------------------------------------------------------------------------------- fit + evaluate
def fit_and_evaluate(train: ImageSet, hold: ImageSet, config: ImageGANConfig, seed: int,
                     figures: Path | None, name: str) -> dict[str, Any]:
    """Fit on ``train``, sample the holdout's class counts, evaluate against the holdout."""
    model = ImageSynthesizer(seed=seed, config=config, progress=False)
    started = time.perf_counter()
    model.fit(train)
    fit_s = time.perf_counter() - started
    started = time.perf_counter()
    wanted = counts(hold.labels)
    parts = [model.sample(k, condition=label, seed=1_000 + i) for i, (label, k) in enumerate(wanted.items())]
    sample_s = time.perf_counter() - started
    synthetic = ImageSet(np.concatenate([p.images for p in parts]), np.concatenate([p.labels for p in parts]),
                         model.mapping_, model.label_name_)
    started = time.perf_counter()
    report = evaluate_images(train, synthetic, holdout=hold, seed=0, progress=False)
    evaluate_s = time.perf_counter() - started
    scores = report.scores.set_index("metric")
    per_class = report.sections["utility"].tables["accuracy_per_class"]
    if figures is not None:
        figures.mkdir(parents=True, exist_ok=True)
        for key, section in (("synthetic_samples", "fidelity"), ("closest_pairs", "privacy")):
            png = report.sections[section].figures[key]["png_base64"]
            (figures / f"{name}-{key}.png").write_bytes(base64.b64decode(png))
        report.to_html(figures / f"{name}-report.html")
    training = model.training_
    return {
        "train_images": len(train), "holdout_images": len(hold), "synthetic_images": len(synthetic),
        "image_size": int(train.images.shape[-1]), "classes": counts(train.labels), "seed": seed,
        "config": asdict(model.config_),
        "training": {"steps": training["steps"], "batch_size": training["batch_size"], "seconds": training["seconds"],
                     "seconds_per_step": training["seconds"] / training["steps"], "generator_loss": training["generator_loss"],
                     "discriminator_loss": training["discriminator_loss"]},
        "fit_s": fit_s, "sample_s": sample_s, "evaluate_s": evaluate_s,
        "feature_extractor": report.context["feature extractor"],
        "scores": {m: {k: _plain(scores.loc[m, k]) for k in ("value", "low", "high", "reference", "note")}
                   for m in SCORE_NAMES if m in scores.index},
        "per_class": {str(c): {k: _plain(v) for k, v in row.items()} for c, row in per_class.iterrows()},
        "gates_passed": bool(report.passed),
    }


def _plain(value: Any) -> Any:
    if value is None or isinstance(value, str):
        return value
    value = float(value)
    return None if math.isnan(value) else value


def part_digits(args: argparse.Namespace) -> dict[str, Any]:
    images = digits_images(16)
    train, hold = split(images, seed=0)
    config = ImageGANConfig(base_width=args.digits_width, batch_size=args.digits_batch, steps=args.digits_steps)
    timing = seconds_per_step(train, config, args.timing_steps)
    print(f"digits: {len(train)} train / {len(hold)} holdout at 16 px; {timing:.3f} s/step measured "
          f"(width {config.base_width}, batch {config.batch_size})", flush=True)
    result = fit_and_evaluate(train, hold, config, seed=0, figures=args.figures, name="digits")
    result["measured_seconds_per_step"] = {str(config.base_width): timing}
    result["default_steps"] = default_image_steps(len(train), config.batch_size)
    _print_result("digits", result)
    return result


def part_phantoms(args: argparse.Namespace) -> dict[str, Any]:
    images = phantom_set(args.phantom_images, 64, seed=0)
    train, hold = split(images, seed=0)
    timing = {}
    for width in (32, 16, 8):
        config = ImageGANConfig(base_width=width, batch_size=args.phantom_batch)
        timing[str(width)] = seconds_per_step(train, config, max(3, args.timing_steps // (4 if width == 32 else 1)))
        print(f"phantoms 64 px: width {width}, batch {args.phantom_batch}: {timing[str(width)]:.3f} s/step", flush=True)
    steps = args.phantom_steps
    if steps is None:  # as many steps as the time budget holds at the measured speed, in whole fifties
        steps = max(50, int(args.phantom_budget_s / timing[str(args.phantom_width)]) // 50 * 50)
        print(f"phantoms: {steps} steps fit {args.phantom_budget_s:.0f} s at width {args.phantom_width}", flush=True)
    config = ImageGANConfig(base_width=args.phantom_width, batch_size=args.phantom_batch, steps=steps)
    result = fit_and_evaluate(train, hold, config, seed=0, figures=args.figures, name="phantoms")
    result["steps_chosen_for_budget_s"] = None if args.phantom_steps is not None else args.phantom_budget_s
    result["measured_seconds_per_step"] = timing
    result["default_steps"] = default_image_steps(len(train), config.batch_size)
    _print_result("phantoms", result)
    return result


def _print_result(name: str, result: dict[str, Any]) -> None:
    training = result["training"]
    print(f"{name}: fit {result['fit_s']:.0f} s ({training['steps']} steps, {training['seconds_per_step']:.3f} s/step), "
          f"evaluate {result['evaluate_s']:.0f} s", flush=True)
    for metric, score in result["scores"].items():
        print(f"  {metric}: {score['value']:.4g} (holdout {score['reference']})", flush=True)


# ---------------------------------------------------------------------------------------------- augment
def _score(classifier: FeatureExtractor, test: ImageSet, minority: str | None) -> dict[str, float]:
    """``check_image_augmentation``'s three metrics, plus the mean recall of classes 5-9 when they are rare."""
    y_test = np.asarray(test.labels, dtype=str)
    proba = classifier.predict_proba(test.images)
    predicted = np.asarray(classifier.classes, dtype=object)[proba.argmax(1)].astype(str)
    scores = {"ROC AUC": macro_roc_auc(y_test, proba, classifier.classes),
              "balanced accuracy": float(balanced_accuracy_score(y_test, predicted))}
    if minority is not None:
        scores["minority recall"] = float(recall_score(y_test, predicted, labels=[minority], average="macro", zero_division=0))
        scores["recall 5-9"] = float(recall_score(y_test, predicted, labels=MINORITY, average="macro", zero_division=0))
    return scores


def part_augment(args: argparse.Namespace, defaults: bool = False) -> dict[str, Any]:
    """``defaults``: each image GAN with synthgen's defaults (width 32, batch 64, default steps), not --augment-*."""
    images = digits_images(16)
    labels = images.labels.astype(str)
    classes = sorted(set(labels))
    config = ImageGANConfig() if defaults else ImageGANConfig(base_width=args.augment_width, batch_size=args.augment_batch,
                                                             steps=args.augment_steps)
    variants = {
        "balanced (10 per class)": {"real only": [], "ratio 2": []},
        "imbalanced (10 of 0-4, 3 of 5-9)": {"real only": [], "balance": [], "ratio 2": []},
    }
    draws, fits = [], []
    for draw in range(args.draws):
        rng = np.random.default_rng(draw)
        chosen = {c: rng.permutation(np.flatnonzero(labels == c))[:10] for c in classes}
        balanced = np.sort(np.concatenate(list(chosen.values())))
        imbalanced = np.sort(np.concatenate([v if c not in MINORITY else v[:3] for c, v in chosen.items()]))
        test = subset(images, np.setdiff1d(np.arange(len(images)), balanced))  # same real test set for both variants
        record = {"draw": draw, "test_images": len(test), "variants": {}}
        # A judge of the synthetic images' labels: the small CNN trained longer on the (large) real test set.
        with threadpool_limits(limits=1):
            judge = FeatureExtractor.fit(test, classes=classes, seed=0, steps=JUDGE_STEPS)
        for variant, train_index in zip(variants, (balanced, imbalanced)):
            train = subset(images, train_index)
            train_counts = counts(train.labels)
            # check_image_augmentation's "minority": the rarest class in training (the first of ties); none when balanced.
            minority = min(train_counts, key=train_counts.get) if len(set(train_counts.values())) > 1 else None
            started = time.perf_counter()
            model = ImageSynthesizer(seed=draw, config=config, progress=False).fit(train)
            fit_s = time.perf_counter() - started
            probe = ImageSet(np.concatenate([model.sample(JUDGE_PER_CLASS, condition=c, seed=500 + i).images
                                             for i, c in enumerate(classes)]),
                             np.repeat(classes, JUDGE_PER_CLASS), images.mapping, images.label_name)
            with threadpool_limits(limits=1):
                judged = {"synthetic": judge.accuracy(probe.images, probe.labels), "real training": judge.accuracy(train.images, train.labels)}
            if args.figures is not None and draw == 0:
                args.figures.mkdir(parents=True, exist_ok=True)
                rows = [list(probe.images[probe.labels == c][:8]) for c in classes]
                name = f"{'augment-defaults' if defaults else 'augment'}-{variant.split()[0]}-draw0-samples.png"
                (args.figures / name).write_bytes(base64.b64decode(grid_png(rows)))
            fits.append({"variant": variant, "draw": draw, "images": len(train), "fit_s": fit_s,
                         "steps": model.training_["steps"], "loop_s": model.training_["seconds"], "judged_accuracy": judged})
            modes = variants[variant]
            runs: dict[str, list[dict[str, float]]] = {mode: [] for mode in modes}
            copies = 0
            with threadpool_limits(limits=1):
                for c in range(args.classifier_seeds):
                    sets = {"real only": train}
                    for mode in modes:
                        if mode == "real only":
                            continue
                        request = {"balance": True} if mode == "balance" else {"ratio": 2.0}
                        augmented = augment_images(train, model=model, seed=10_000 * (draw + 1) + 100 * c + 1, **request)
                        copies += augmented.exact_copies_dropped
                        sets[mode] = augmented.images
                    for mode, data in sets.items():
                        classifier = FeatureExtractor.fit(data, classes=classes, seed=c)
                        runs[mode].append(_score(classifier, test, minority))
            per_draw = {}
            for mode in modes:
                if mode != "real only":
                    metrics, verdict = compare_runs(runs["real only"], runs[mode], "classification")
                    per_draw[mode] = {"verdict": verdict, "difference": {m.metric: asdict(m.difference) for m in metrics}}
                modes[mode].append({k: float(np.mean([r[k] for r in runs[mode]])) for k in runs[mode][0]})
            record["variants"][variant] = {"train_images": len(train), "train_counts": train_counts, "minority": minority,
                                           "fit_s": fit_s, "exact_copies_dropped": copies, "runs": runs,
                                           "per_draw_check": per_draw}
            print(f"augment draw {draw}, {variant}: GAN fit {fit_s:.0f} s; " + "; ".join(
                f"{mode} bal.acc {modes[mode][-1]['balanced accuracy']:.3f}" for mode in modes)
                + "; per-draw verdicts " + ", ".join(f"{m}: {v['verdict']}" for m, v in per_draw.items()), flush=True)
        draws.append(record)
    summary = {}
    for variant, modes in variants.items():
        summary[variant] = {}
        for mode, values in modes.items():
            entry = {"mean": {k: Interval.of([v[k] for v in values]).__dict__ for k in values[0]}}
            if mode != "real only":
                metrics, verdict = compare_runs(modes["real only"], values, "classification")
                entry |= {"verdict": verdict, "difference": {m.metric: asdict(m.difference) for m in metrics},
                          "per_draw_verdicts": [d["variants"][variant]["per_draw_check"][mode]["verdict"] for d in draws]}
            summary[variant][mode] = entry
    return {"config": asdict(config), "draws": args.draws, "classifier_seeds": args.classifier_seeds,
            "classifier_steps": "FeatureExtractor default: max(100, 5 epochs of batches of 64)", "fits": fits,
            "per_draw": draws, "summary": summary}


# ---------------------------------------------------------------------------------------------- output
def environment() -> str:
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--", "synthgen"], capture_output=True, text=True,
                           cwd=ROOT).stdout.strip()
    versions = ", ".join(f"{name} {version(name)}" for name in ("synthgen", "scikit-learn", "numpy"))
    return (f"Python {platform.python_version()}, torch {torch.__version__} (CPU, {torch.get_num_threads()} thread), {versions}; "
            f"synthgen at commit {commit}{' with uncommitted changes under synthgen/' if dirty else ''}; "
            f"{os.cpu_count()} CPU cores shared with other jobs, no GPU")


def _f(value: float | None, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _interval(entry: dict[str, float], digits: int = 3) -> str:
    if entry["low"] is None or math.isnan(entry["low"]):
        return _f(entry["mean"], digits)
    return f"{entry['mean']:.{digits}f} [{entry['low']:.{digits}f}, {entry['high']:.{digits}f}]"


def _signed(entry: dict[str, float]) -> str:
    if math.isnan(entry["low"]):
        return f"{entry['mean']:+.3f}"
    return f"{entry['mean']:+.3f} [{entry['low']:+.3f}, {entry['high']:+.3f}]"


def render(results: dict[str, Any]) -> str:
    lines = ["Produced by:", ""]
    for part in PARTS:
        if part in results:
            run = results[part]["run"]
            lines.append(f"- {part}: `{run['command']}` — {run['date']}, {run['minutes']} min; {run['environment']}")
    fitted = [p for p in ("digits", "phantoms") if p in results]
    if fitted:
        lines += ["", "Synthetic vs holdout (each score's reference: the real holdout scored the same way against the "
                  "training split; KID ± its std over 100 subsets):", "",
                  "| measure | " + " | ".join(f"{p}: synthetic | {p}: holdout" for p in fitted) + " |",
                  "|---|" + "---|---|" * len(fitted)]
        rows = [("FD", "FD", 2), ("KID", "KID", 4), ("Precision", "precision", 3), ("Recall", "recall", 3),
                ("Density", "density", 3), ("Coverage", "coverage", 3),
                ("Sample accuracy", "accuracy of samples for their requested label (holdout: classifier accuracy)", 3),
                ("TSTR accuracy", "TSTR accuracy (holdout column: TRTR)", 3),
                ("Memorisation share (pixels)", "memorisation share, pixels (ideal 0.05)", 3),
                ("Memorisation share (features)", "memorisation share, features (ideal 0.05)", 3),
                ("Near-duplicate share", "near-duplicate share", 3)]
        for metric, label, digits in rows:
            cells = []
            for p in fitted:
                s = results[p]["result"]["scores"].get(metric)
                if s is None:
                    cells += ["–", "–"]
                    continue
                value = _f(s["value"], digits)
                if metric == "KID":
                    std = re.match(r"± (\S+)", s["note"] or "")
                    held = re.search(r"holdout ± (\S+)", s["note"] or "")
                    value += f" ± {std.group(1)}" if std else ""
                    reference = _f(s["reference"], digits) + (f" ± {held.group(1)}" if held else "")
                elif s["low"] is not None:
                    value += f" [{s['low']:.3f}, {s['high']:.3f}]"
                    reference = "0.05 by construction" if metric.startswith("Memorisation") else _f(s["reference"], digits)
                else:
                    reference = _f(s["reference"], digits)
                cells += [value, reference]
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
        lines += ["", "| run | images (train / holdout / synthetic) | size | GAN config | steps | s/step (fit) | fit s | "
                  "evaluate s | measured s/step by base width (batch) |", "|---|---|---|---|---|---|---|---|---|"]
        for p in fitted:
            r = results[p]["result"]
            c = r["config"]
            measured = ", ".join(f"{w}: {s:.2f}" for w, s in r["measured_seconds_per_step"].items())
            budget = f", chosen to fill {r['steps_chosen_for_budget_s']:.0f} s" if r.get("steps_chosen_for_budget_s") else ""
            lines.append(
                f"| {p} | {r['train_images']} / {r['holdout_images']} / {r['synthetic_images']} | {r['image_size']} px | "
                f"base width {c['base_width']}, batch {c['batch_size']}, lr {c['lr_g']:g}, EMA {c['ema_decay']}, "
                f"DiffAugment {c['diffaugment']} | {r['training']['steps']}{budget} (default would be {r['default_steps']}) | "
                f"{r['training']['seconds_per_step']:.3f} | {r['fit_s']:.0f} | {r['evaluate_s']:.0f} | {measured} ({c['batch_size']}) |")
        for p in fitted:
            r = results[p]["result"]
            lines += ["", f"{p}: accuracy of the real-trained classifier per class (feature extractor: {r['feature_extractor']})",
                      "", "| class | synthetic images | synthetic accuracy | holdout images | holdout accuracy |",
                      "|---|---|---|---|---|"]
            for c, row in r["per_class"].items():
                lines.append(f"| {c} | {row['synthetic images']:.0f} | {_f(row['synthetic accuracy'])} | "
                             f"{row['holdout images']:.0f} | {_f(row['holdout accuracy'])} |")
    for key in ("augment", "augment-defaults"):
        if key not in results:
            continue
        a = results[key]["result"]
        c = a["config"]
        fit_s = [f["fit_s"] for f in a["fits"]]
        steps = sorted({f["steps"] for f in a["fits"]})
        kind = "synthgen's defaults: " if key == "augment-defaults" else ""
        lines += ["", f"{key}: augmentation on digits, 16 px: {a['draws']} draws of the training images × {a['classifier_seeds']} "
                  f"classifier seeds; GAN per training set ({kind}base width {c['base_width']}, batch {c['batch_size']}, "
                  f"{'/'.join(map(str, steps))} steps, {min(fit_s):.0f}–{max(fit_s):.0f} s per fit). {_judged(a)} Mean over draws [95% t-interval over "
                  "draws, each draw the mean of its classifier seeds]; verdict on the paired difference over draws "
                  "(`compare_runs`), then the verdict of each draw over its classifier seeds (what `--check` reports for "
                  "that training set):", "",
                  "| training set | mode | ROC AUC | balanced accuracy | minority recall (class 5) | mean recall, classes 5–9 "
                  "| Δ balanced accuracy | Δ ROC AUC | verdict | per-draw verdicts |", "|---|---|---|---|---|---|---|---|---|---|"]
        for variant, modes in a["summary"].items():
            for mode, entry in modes.items():
                m = entry["mean"]
                cells = [_interval(m["ROC AUC"]), _interval(m["balanced accuracy"]),
                         _interval(m["minority recall"]) if "minority recall" in m else "–",
                         _interval(m["recall 5-9"]) if "recall 5-9" in m else "–"]
                delta = (f"{_signed(entry['difference']['balanced accuracy'])} | {_signed(entry['difference']['ROC AUC'])}"
                         if "difference" in entry else "(baseline) | ")
                lines.append(f"| {variant} | {mode} | " + " | ".join(cells) + f" | {delta} | {entry.get('verdict', '')} | "
                             + ", ".join(entry.get("per_draw_verdicts", [])) + " |")
    return "\n".join(lines)


def _judged(a: dict[str, Any]) -> str:
    """How often the augmentation GANs' samples show their requested digit, per variant."""
    if "judged_accuracy" not in a["fits"][0]:
        return ""
    parts = []
    for variant in dict.fromkeys(f["variant"] for f in a["fits"]):
        fits = [f for f in a["fits"] if f["variant"] == variant]
        syn = ", ".join(f"{f['judged_accuracy']['synthetic']:.2f}" for f in fits)
        real = ", ".join(f"{f['judged_accuracy']['real training']:.2f}" for f in fits)
        parts.append(f"{variant.split()[0]}: synthetic {syn} (real training images {real})")
    return (f"Share of samples ({JUDGE_PER_CLASS} per class) that show their requested digit, judged by the small CNN "
            f"trained {JUDGE_STEPS} steps on that draw's real test images, per draw: " + "; ".join(parts) + ".")


def write_readme(block: str) -> None:
    text = README.read_text()
    if BEGIN not in text:
        text += f"\n{BEGIN}\n{END}\n"
    pattern = re.compile(re.escape(BEGIN) + ".*?" + re.escape(END), re.S)
    README.write_text(pattern.sub(lambda _: f"{BEGIN}\n{block}\n{END}", text))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=(*PARTS, "all"), default="all",
                        help=f"all: {', '.join(DEFAULT_PARTS)} (augment-defaults fits six GANs at synthgen's defaults, ~45 min)")
    parser.add_argument("--json", type=Path, help="results file; parts run now replace their entries, others are kept")
    parser.add_argument("--from-json", type=Path, help="render this results file instead of running")
    parser.add_argument("--write-readme", action="store_true", help=f"write the tables into {README.name} between markers")
    parser.add_argument("--figures", type=Path, help="write sample grids (PNG) and HTML reports here")
    parser.add_argument("--timing-steps", type=int, default=8, help="steps timed per config before fitting")
    parser.add_argument("--digits-width", type=int, default=32)
    parser.add_argument("--digits-batch", type=int, default=64)
    parser.add_argument("--digits-steps", type=int, default=None, help="default: synthgen's (100 epochs, >= 2,000)")
    parser.add_argument("--phantom-images", type=int, default=600)
    parser.add_argument("--phantom-width", type=int, default=8)
    parser.add_argument("--phantom-batch", type=int, default=32)
    parser.add_argument("--phantom-steps", type=int, default=None,
                        help="default: as many as --phantom-budget-s holds at the s/step measured just before")
    parser.add_argument("--phantom-budget-s", type=float, default=450.0)
    parser.add_argument("--draws", type=int, default=3, help="augment: draws of the 10-per-class training set")
    parser.add_argument("--classifier-seeds", type=int, default=5, help="augment: classifier seeds per draw")
    parser.add_argument("--augment-width", type=int, default=32)
    parser.add_argument("--augment-batch", type=int, default=32)
    parser.add_argument("--augment-steps", type=int, default=800)
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.from_json:
        results = json.loads(args.from_json.read_text())
    else:
        results = json.loads(args.json.read_text()) if args.json and args.json.exists() else {}
        command = "python benchmarks/images.py " + " ".join(sys.argv[1:])
        for part in DEFAULT_PARTS if args.part == "all" else (args.part,):
            started = datetime.now(timezone.utc)
            result = {"digits": part_digits, "phantoms": part_phantoms, "augment": part_augment,
                      "augment-defaults": lambda a: part_augment(a, defaults=True)}[part](args)
            minutes = round((datetime.now(timezone.utc) - started).total_seconds() / 60, 1)
            results[part] = {"run": {"command": command, "date": started.strftime("%Y-%m-%d %H:%M UTC"), "minutes": minutes,
                                     "environment": environment()}, "result": result}
            print(f"{part}: {minutes} min", flush=True)
            if args.json:
                args.json.write_text(json.dumps(results, indent=1, default=float))
    block = render(results)
    print(block)
    if args.write_readme:
        write_readme(block)


if __name__ == "__main__":
    main()
