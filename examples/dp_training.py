"""Train with differential privacy and print the guarantee it comes with.

The table is scikit-learn's diabetes data (442 patients: age, sex, BMI, blood pressure, six
blood measurements and a disease-progression score; it ships with scikit-learn). The fit is
(ε, δ)-DP for adding or removing one patient, with everything inside one budget: the column
statistics the encoders are built from, the two-way tables of dependent columns and the rows'
missingness patterns. The generator is then fitted to those released tables (post-processing:
no DP-SGD critic by default, see README).

A DP fit takes its schema from metadata you declare, never from the rows (detecting kinds reads
every row, outside the budget). ``Metadata.detect`` gives a draft; below, every column is then
declared explicitly, so nothing the draft guessed from the rows survives. Domains that are public
knowledge (the study's age range, the coding of sex, plausible ranges of BMI and blood pressure)
are declared too (``public_bounds``, ``public_values``): the budget is not spent on them. The
blood measurements' ranges are left to the DP release to find.

    python examples/dp_training.py --out dp-demo
    python examples/dp_training.py --out dp-demo --epsilon 1 --steps 2000

Writes ``metadata.json`` (the declared schema), ``model.sgz`` and ``synthetic.csv`` into ``--out``,
and prints the guarantee (also in ``synthgen info model.sgz`` and in any evaluation report).
"""
from __future__ import annotations

import argparse
from pathlib import Path

from sklearn.datasets import load_diabetes

import synthgen
import synthgen.dp.accounting
from synthgen.errors import SynthgenError

#: The declared schema: (sdtype, computer_representation, public domain or None).
SCHEMA = {
    "age": ("numerical", "Int64", {"public_bounds": [18, 90]}),  # the study enrolled adults
    "sex": ("categorical", None, {"public_values": [1.0, 2.0]}),  # the dataset's documented coding
    "bmi": ("numerical", "Float", {"public_bounds": [12.0, 60.0]}),
    "bp": ("numerical", "Float", {"public_bounds": [50.0, 160.0]}),  # mean arterial pressure, mmHg
    **{name: ("numerical", "Float", None) for name in ("s1", "s2", "s3", "s4", "s5", "s6")},
    "target": ("numerical", "Int64", None),  # disease progression one year after baseline
}


def declared_metadata(table) -> synthgen.Metadata:
    """The draft from ``Metadata.detect``, with every column replaced by its declared spec."""
    metadata = synthgen.Metadata.detect(table)
    if set(metadata.columns) != set(SCHEMA):
        raise SystemExit(f"the table's columns {sorted(metadata.columns)} are not the declared ones {sorted(SCHEMA)}")
    for name, (sdtype, representation, public) in SCHEMA.items():
        spec = {"sdtype": sdtype, **({"computer_representation": representation} if representation else {}),
                **(public or {})}
        metadata.update_column(name, **spec)  # a spec with an sdtype replaces the draft's
    return metadata


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("dp-training"), help="output folder (created)")
    parser.add_argument("--steps", type=int, default=300,
                        help="training steps (default: a quick demo; leave synthgen to choose with --steps 0)")
    parser.add_argument("--seed", type=int, default=0,
                        help="fixes initialisation and sampling; the DP noise is never seeded, so a DP fit "
                             "is not byte-reproducible")
    parser.add_argument("--epsilon", type=float, default=3.0, help="the privacy budget ε")
    parser.add_argument("--delta", type=float, default=None, help="δ (default 1e-5)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    table = load_diabetes(as_frame=True, scaled=False).frame
    metadata = declared_metadata(table)
    metadata.save(args.out / "metadata.json")  # reviewable, and reusable: synthgen fit --metadata

    model = synthgen.TabularSynthesizer(
        metadata, seed=args.seed, steps=args.steps or None,
        dp=synthgen.DPSettings(epsilon=args.epsilon, delta=args.delta),
    ).fit(table)
    model.save(args.out / "model.sgz")
    synthetic = model.sample(len(table), seed=args.seed)
    synthetic.to_csv(args.out / "synthetic.csv", index=False)

    print(synthgen.dp.accounting.statement(model.privacy_))
    print(f"Wrote {args.out / 'model.sgz'} and {len(synthetic)} rows to {args.out / 'synthetic.csv'}")


if __name__ == "__main__":
    try:
        main()
    except SynthgenError as error:  # bad input or options: one line naming it, not a traceback
        raise SystemExit(f"error: {error}") from None
