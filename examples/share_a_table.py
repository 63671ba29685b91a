"""Share a patient table: fit on it with a holdout, sample, and write the fidelity + privacy report.

The table is scikit-learn's breast-cancer data (569 patients, 30 measurements and a diagnosis;
it ships with scikit-learn, so nothing is downloaded). A fifth of the rows is held out of
training: those real patients the generator never saw are the yardstick every score is compared
with, and what the privacy gates test against.

    python examples/share_a_table.py --out share-demo            # a quick run
    python examples/share_a_table.py --out share-demo --steps 3000  # closer to a real fit

Writes ``model.sgz``, ``synthetic.csv``, ``report.html`` (open it in a browser; no network
needed) and ``report.json`` into ``--out``, and prints the headline scores.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from sklearn.datasets import load_breast_cancer

import synthgen
from synthgen.errors import SynthgenError

#: Report keys (prefixes) printed as the fidelity headline; "tstr": trained on synthetic, tested on the holdout.
FIDELITY_HEADLINE = ("column_shapes", "column_pair_trends", "detection", "tstr")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("share-a-table"), help="output folder (created)")
    parser.add_argument("--steps", type=int, default=300,
                        help="training steps (the default is a quick demo; synthgen's own default is 1,500+)")
    parser.add_argument("--seed", type=int, default=0, help="same seed, same CPU: the same model and rows")
    parser.add_argument("--columns", type=int, default=30,
                        help="how many of the 30 measurements to keep (fewer: a faster fit and report)")
    args = parser.parse_args()
    if not 1 <= args.columns <= 30:
        parser.error(f"--columns must be between 1 and 30, got {args.columns}")
    args.out.mkdir(parents=True, exist_ok=True)

    frame = load_breast_cancer(as_frame=True).frame
    table = frame[[*frame.columns[: args.columns], "target"]]  # "target": 0 malignant, 1 benign

    # holdout=0.2: the model records which rows it kept out, and split() hands them back.
    model = synthgen.TabularSynthesizer(seed=args.seed, steps=args.steps).fit(table, holdout=0.2)
    model.save(args.out / "model.sgz")
    train, holdout = model.split(table)

    # As many synthetic rows as training rows, so each score compares like with like.
    synthetic = model.sample(len(train), seed=args.seed)
    synthetic.to_csv(args.out / "synthetic.csv", index=False)

    report = synthgen.evaluate(
        train, synthetic, holdout=holdout, metadata=model.metadata_, target="target", seed=args.seed,
        context={"data source": "scikit-learn breast cancer (Wisconsin diagnostic)",
                 "generator": model.describe()},
    )
    report.to_html(args.out / "report.html")
    report.to_json(args.out / "report.json")

    # The JSON is the machine-readable form of the same report: read the headline back from it.
    document = json.loads((args.out / "report.json").read_text(encoding="utf-8"))
    print(f"Verdict: {document['verdict']} ({document['verdict_detail']})")
    print(f"  {'Fidelity':<32} {'synthetic':>9} {'holdout':>9}   (holdout: what fresh real patients score)")
    for score in document["scores"]:
        if score["section"] == "fidelity" and score["key"].startswith(FIDELITY_HEADLINE):
            print(f"  {score['metric']:<32} {_number(score['value']):>9} {_number(score['reference']):>9}")
    print("Privacy gates (each a one-sided test against the null of fresh real rows):")
    for gate in document["gates"]:
        print(f"  {gate['text']}")
    print(f"Wrote {args.out / 'report.html'} and {args.out / 'report.json'}")


def _number(value: object) -> str:
    return f"{value:.3f}" if isinstance(value, (int, float)) and not isinstance(value, bool) else "n/a"


if __name__ == "__main__":
    try:
        main()
    except SynthgenError as error:  # bad input or options: one line naming it, not a traceback
        raise SystemExit(f"error: {error}") from None
