"""GPU readiness: one command to run when a CUDA GPU is available.

    python benchmarks/gpu.py                      # on a GPU machine (bfloat16, the defaults below)
    python benchmarks/gpu.py --device cpu --smoke # the same code paths, tiny, anywhere

Three jobs, each fitted twice with the same seed:
- **flchain** (R survival, 7,874 rows x 11 columns) with bfloat16 autocast;
- **1M rows**: flchain resampled to ``--big-rows`` rows with jitter on its numbers (made here);
- **images**: the image GAN at 64 px and base width 64 on synthetic CT-like phantoms.

For each it prints ms per optimiser step, rows (images) per second sampled, peak GPU memory, and
whether the two same-seed fits gave identical samples (on CUDA, cuBLAS and atomics may make them
differ: the row says so rather than hiding it).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))  # phantoms.py: synthetic CT-like images, no download


def _peak_reset(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)


def _peak_mb(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    torch.cuda.synchronize(device)
    return torch.cuda.max_memory_allocated(device) / 2**20


def big_table(base: pd.DataFrame, rows: int, seed: int) -> pd.DataFrame:
    """``base`` resampled to ``rows`` rows, numbers jittered by 2% of their spread (rounded back for integers)."""
    rng = np.random.default_rng(seed)
    table = base.iloc[rng.integers(0, len(base), rows)].reset_index(drop=True)
    for name in table.select_dtypes("number"):
        column = table[name]
        noisy = column + rng.normal(0.0, 0.02 * float(column.std() or 1.0), rows)
        table[name] = noisy.round() if pd.api.types.is_integer_dtype(column) else noisy
    return table


def tabular_job(name: str, table: pd.DataFrame, device: str, steps: int, sample_rows: int) -> dict[str, Any]:
    from synthgen.models.tabular_gan import GANConfig
    from synthgen.synthesizers.tabular import TabularSynthesizer

    results, samples = {}, []
    for attempt in range(2):
        torch_device = torch.device(device)
        _peak_reset(torch_device)
        model = TabularSynthesizer(seed=0, steps=steps, device=device, progress=False,
                                   config=GANConfig(mixed_precision=torch_device.type == "cuda")).fit(table)
        fit_peak = _peak_mb(torch_device)
        started = time.perf_counter()
        samples.append(model.sample(sample_rows, seed=1))
        sample_s = time.perf_counter() - started
        if attempt == 0:
            summary = model.training_
            results = {"job": name, "rows": len(table), "steps": summary["steps"], "batch": summary["batch_size"],
                       "ms_per_step": 1000 * summary["seconds"] / summary["steps"], "bfloat16": summary["mixed_precision"],
                       "rows_per_s_sampled": sample_rows / sample_s, "peak_mb": fit_peak}
    results["same_seed_identical"] = bool(samples[0].equals(samples[1]))
    return results


def image_job(device: str, steps: int, count: int, sample_images: int) -> dict[str, Any]:
    from phantoms import phantom_images

    from synthgen.images.types import ImageSet, IntensityMapping
    from synthgen.models.image_gan import ImageGANConfig
    from synthgen.synthesizers.images import ImageSynthesizer

    hounsfield, labels = phantom_images(count, 64, seed=0)
    mapping = IntensityMapping(-1024.0, 1024.0, "HU", modality="CT")  # a wide CT window
    images = ImageSet(mapping.to_unit(hounsfield)[:, None], labels, mapping)
    results, samples = {}, []
    for attempt in range(2):
        torch_device = torch.device(device)
        _peak_reset(torch_device)
        model = ImageSynthesizer(seed=0, steps=steps, device=device, progress=False,
                                 config=ImageGANConfig(base_width=64)).fit(images)
        fit_peak = _peak_mb(torch_device)
        started = time.perf_counter()
        samples.append(model.sample(sample_images, seed=1).images)
        sample_s = time.perf_counter() - started
        if attempt == 0:
            summary = model.training_
            results = {"job": "images 64 px, width 64", "rows": count, "steps": summary["steps"],
                       "batch": summary["batch_size"], "ms_per_step": 1000 * summary["seconds"] / summary["steps"],
                       "bfloat16": summary.get("mixed_precision"), "rows_per_s_sampled": sample_images / sample_s,
                       "peak_mb": fit_peak}
    results["same_seed_identical"] = bool(np.array_equal(samples[0], samples[1]))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--steps", type=int, default=1000, help="optimiser steps per tabular fit")
    parser.add_argument("--image-steps", type=int, default=500)
    parser.add_argument("--big-rows", type=int, default=1_000_000)
    parser.add_argument("--sample-rows", type=int, default=1_000_000)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: checks the script and its code paths")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        sys.exit("no CUDA device here: run on a GPU machine, or pass --device cpu --smoke to check the script")
    if args.smoke:
        args.steps, args.image_steps, args.big_rows, args.sample_rows = 20, 4, 20_000, 5_000
    from tables import TABLES

    flchain = TABLES["flchain"]()
    jobs: list[Callable[[], dict[str, Any]]] = [
        lambda: tabular_job("flchain", flchain, args.device, args.steps, args.sample_rows),
        lambda: tabular_job(f"{args.big_rows:,} rows", big_table(flchain, args.big_rows, 0), args.device, args.steps,
                            args.sample_rows),
        lambda: image_job(args.device, args.image_steps, 64 if args.smoke else 512, 64 if args.smoke else 2_000),
    ]
    results = []
    print(f"device {args.device} ({torch.cuda.get_device_name(args.device) if args.device.startswith('cuda') else 'CPU'}), "
          f"torch {torch.__version__}")
    print("| job | rows | steps | batch | ms/step | bf16 | rows/s sampled | peak GPU MB | same seed, same sample |")
    print("|---|---|---|---|---|---|---|---|---|")
    for job in jobs:
        row = job()
        results.append(row)
        peak = f"{row['peak_mb']:.0f}" if row["peak_mb"] is not None else "–"
        print(f"| {row['job']} | {row['rows']:,} | {row['steps']} | {row['batch']} | {row['ms_per_step']:.1f} | "
              f"{row['bfloat16']} | {row['rows_per_s_sampled']:,.0f} | {peak} | {row['same_seed_identical']} |", flush=True)
    if args.json:
        args.json.write_text(json.dumps({"device": args.device, "torch": torch.__version__, "results": results}, indent=2))


if __name__ == "__main__":
    main()
