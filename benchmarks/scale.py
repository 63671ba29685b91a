"""Scale benchmark (issue 17): a big synthetic-but-realistic table, the fit's peak memory and step time,
2 ranks against 1, and CTGAN's peak memory. One torch thread per process; see the Scale section of
benchmarks/README.md for the commands and what they measured.

    python benchmarks/scale.py make --rows 2000000 --out /tmp/scale/t2m.parquet
    python benchmarks/scale.py fit --table /tmp/scale/t2m.parquet --steps 200 [--model m.sgz] [--from-file]
    torchrun --standalone --nproc-per-node 2 benchmarks/scale.py fit --table ... --steps 200
    python benchmarks/scale.py read --table /tmp/scale/t1m.csv [--chunk-rows 100000]
    python benchmarks/scale.py ctgan --table /tmp/scale/t2m.parquet --rows 200000 --epochs 1

``fit`` prints one JSON line (rank 0): peak RSS of the process, the RSS after reading the table, the
encoded bytes per row (dense float32 and, where this synthgen has it, compact) and ms per step.
``--from-file`` fits from the path (read chunk by chunk, never whole) instead of a DataFrame read whole:
then fit reads the file (in ``fit_s``), where a read whole is in ``read_s``.
Run it with ``PYTHONPATH=<worktree of an older commit>`` to measure that commit the same way.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

#: Rows the metadata is detected on (the same schema for every run; detection is not what is measured).
DETECT_ROWS = 100_000


def _peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # Linux reports KiB


def make_table(rows: int, seed: int) -> pd.DataFrame:
    """flchain (7,874 × 11) resampled with replacement, numbers jittered, plus 9 made-up clinical columns
    that depend on it: 20 columns, missing cells where flchain has them."""
    sys.path.insert(0, str(Path(__file__).parent))
    from tables import TABLES

    base = TABLES["flchain"]()
    rng = np.random.default_rng(seed)
    frame = base.iloc[rng.integers(0, len(base), rows)].reset_index(drop=True)
    for name in ["kappa", "lambda", "creatinine"]:
        frame[name] = (frame[name] * np.exp(rng.normal(0, 0.05, rows))).round(2)
    frame["age"] = (frame["age"] + rng.integers(-2, 3, rows)).clip(50, 101)
    frame["futime"] = (frame["futime"] + rng.integers(-30, 31, rows)).clip(0)
    age = frame["age"].to_numpy(float)
    frame["bmi"] = rng.normal(27 - 0.05 * (age - 60), 4.5, rows).round(1)
    frame["sbp"] = rng.normal(110 + 0.5 * age, 15, rows).round()
    frame["hba1c"] = np.where(rng.random(rows) < 0.2, np.nan, rng.lognormal(1.75, 0.15, rows).round(1))
    frame["los_days"] = rng.poisson(2 + frame["death"].to_numpy() * 3, rows)
    frame["ward"] = pd.Categorical(rng.choice([f"ward-{i:02d}" for i in range(40)], rows, p=np.arange(40, 0, -1) / 820))
    frame["site"] = pd.Categorical(rng.choice([f"site-{i:02d}" for i in range(12)], rows))
    frame["insurance"] = pd.Categorical(rng.choice(["public", "private", "mixed", "none"], rows, p=[0.55, 0.3, 0.1, 0.05]))
    frame["smoker"] = rng.random(rows) < 0.18 + 0.002 * (age - 60)
    frame["visits"] = rng.poisson(3, rows)
    for name in ["sex", "flc.grp", "chapter"]:
        frame[name] = frame[name].astype("category")
    return frame


def _make(args: argparse.Namespace) -> None:
    frame = make_table(args.rows, args.seed)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(args.out, index=False, row_group_size=500_000)
    print(json.dumps({"rows": len(frame), "columns": frame.shape[1], "file_mb": round(args.out.stat().st_size / 2**20, 1)}))


def _fit(args: argparse.Namespace) -> None:
    import torch

    torch.set_num_threads(1)
    from synthgen.io import read_table
    from synthgen.metadata import Metadata
    from synthgen.synthesizers.tabular import TabularSynthesizer

    options = {"transformer_sample_rows": args.transformer_sample_rows} if args.transformer_sample_rows else {}
    started = time.perf_counter()
    if args.from_file:
        if args.rows:
            raise SystemExit("--rows reads the table whole; leave it out with --from-file")
        # The first rows only, for the same metadata as below; the file itself is read by fit (timed there).
        if args.table.suffix == ".parquet":
            import pyarrow.parquet as pq

            head = next(pq.ParquetFile(args.table).iter_batches(batch_size=DETECT_ROWS)).to_pandas()
        else:
            head = pd.read_csv(args.table, nrows=DETECT_ROWS)
        metadata = Metadata.detect(head)
        data: pd.DataFrame | Path = args.table
        del head
    else:
        data = read_table(args.table)
        if args.rows:
            data = data.iloc[: args.rows]
        metadata = Metadata.detect(data.iloc[:DETECT_ROWS])
    read_seconds = time.perf_counter() - started
    read_rss = _peak_rss_gb()
    started = time.perf_counter()
    model = TabularSynthesizer(metadata, seed=args.seed, steps=args.steps, batch_size=args.batch_size, progress=False,
                               calibrate=False, **options).fit(data, **({"chunk_rows": args.chunk_rows} if args.from_file else {}))
    seconds = time.perf_counter() - started
    spans = model.table_.spans_
    result = {
        "rows": model.training_.get("table_rows", model.training_["rows"]), "columns": model.training_["columns"],
        "from_file": args.from_file, "steps": args.steps, "world_size": model.training_.get("world_size", 1),
        "batch_per_rank": model.config_.batch_size, "read_rss_gb": round(read_rss, 2), "peak_rss_gb": round(_peak_rss_gb(), 2),
        "read_s": round(read_seconds, 1), "fit_s": round(seconds, 1), "train_s": model.training_["seconds"],
        "step_ms": round(1000 * model.training_["seconds"] / args.steps, 1),
        "dense_bytes_per_row": 4 * model.table_.width_,
        "transformer_sample_rows": model.training_.get("transformer_sample_rows"),
    }
    try:
        from synthgen.data.compact import code_dtype
    except ImportError:  # a commit from before the compact table
        result["compact_bytes_per_row"] = None
    else:
        result["compact_bytes_per_row"] = sum(4 * s.width if s.activation == "tanh" else code_dtype(s.width).itemsize
                                              for s in spans)
    result["rows_per_s"] = round(result["world_size"] * result["batch_per_rank"] * args.steps / result["train_s"])
    if int(os.environ.get("RANK", "0")) == 0:
        if args.model:
            model.save(args.model)
        print(json.dumps(result), flush=True)


def _read(args: argparse.Namespace) -> None:
    """Read a file through TableFile as a fit from the path does, without fitting: the row count, every
    column (in the default column groups), every chunk; seconds for each and the peak RSS."""
    from synthgen.io import TableFile

    started = time.perf_counter()
    source = TableFile(args.table, args.chunk_rows)
    rows = source.rows
    counted = time.perf_counter()
    cells = sum(frame.size for frame in source.columns())
    columns = time.perf_counter()
    chunked = sum(len(frame) for frame in source.chunks())
    done = time.perf_counter()
    assert cells == rows * len(source.names) and chunked == rows
    print(json.dumps({"rows": rows, "columns": len(source.names), "rows_s": round(counted - started, 1),
                      "columns_s": round(columns - counted, 1), "chunks_s": round(done - columns, 1),
                      "total_s": round(done - started, 1), "peak_rss_gb": round(_peak_rss_gb(), 2)}))


def _ctgan(args: argparse.Namespace) -> None:
    import torch

    torch.set_num_threads(1)
    from ctgan import CTGAN

    data = pd.read_parquet(args.table).iloc[: args.rows]
    # CTGAN refuses gaps in continuous columns: fill them (the memory, not the quality, is measured).
    discrete = [c for c in data.columns if not pd.api.types.is_numeric_dtype(data[c]) or data[c].dtype == bool]
    data = data.fillna({c: data[c].median() for c in data.columns if c not in discrete})
    data[discrete] = data[discrete].astype(str)
    read_rss = _peak_rss_gb()
    started = time.perf_counter()
    CTGAN(epochs=args.epochs, verbose=False).fit(data, discrete)
    print(json.dumps({"rows": len(data), "columns": data.shape[1], "epochs": args.epochs, "read_rss_gb": round(read_rss, 2),
                      "peak_rss_gb": round(_peak_rss_gb(), 2), "fit_s": round(time.perf_counter() - started, 1)}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    make = commands.add_parser("make", help="write the scale table")
    make.add_argument("--rows", type=int, required=True)
    make.add_argument("--out", type=Path, required=True)
    make.add_argument("--seed", type=int, default=0)
    fit = commands.add_parser("fit", help="fit synthgen and print peak memory, bytes per row and step time")
    fit.add_argument("--table", type=Path, required=True)
    fit.add_argument("--rows", type=int, default=None, help="the first ROWS rows only")
    fit.add_argument("--steps", type=int, default=200)
    fit.add_argument("--batch-size", type=int, default=500, help="per rank")
    fit.add_argument("--seed", type=int, default=0)
    fit.add_argument("--transformer-sample-rows", type=int, default=None)
    fit.add_argument("--model", type=Path, default=None, help="save the model here (rank 0)")
    fit.add_argument("--from-file", action="store_true", help="fit from the path, reading it in chunks (never whole)")
    fit.add_argument("--chunk-rows", type=int, default=100_000, help="rows read at a time with --from-file")
    read = commands.add_parser("read", help="read a table through TableFile (no fit): seconds and peak memory")
    read.add_argument("--table", type=Path, required=True)
    read.add_argument("--chunk-rows", type=int, default=100_000)
    ctgan = commands.add_parser("ctgan", help="fit CTGAN and print its peak memory")
    ctgan.add_argument("--table", type=Path, required=True)
    ctgan.add_argument("--rows", type=int, required=True)
    ctgan.add_argument("--epochs", type=int, default=1)
    args = parser.parse_args()
    {"make": _make, "fit": _fit, "read": _read, "ctgan": _ctgan}[args.command](args)


if __name__ == "__main__":
    main()
