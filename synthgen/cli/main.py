"""The ``synthgen`` command: a thin shell over the Python API (parse, call, print), one module per command.

Each command imports the API when it runs, so ``synthgen --help`` loads no torch, pydicom or scikit-learn.
"""
from __future__ import annotations

import logging
import signal
import threading
from typing import Any

import click

from synthgen._files import INTERRUPTED
from synthgen._version import __version__
from synthgen.cli.augment import augment_command
from synthgen.cli.demo import demo
from synthgen.cli.evaluate import evaluate_command
from synthgen.cli.fit import fit
from synthgen.cli.info import info
from synthgen.cli.metadata import metadata_command
from synthgen.cli.sample import sample


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
        previous = {signum: signal.signal(signum, _stop) for signum in (signal.SIGTERM, signal.SIGINT)}
        click.get_current_context().call_on_close(lambda: [signal.signal(n, h) for n, h in previous.items()])


def _stop(signum: int, frame: Any) -> None:
    """SIGTERM and SIGINT as exceptions, so the writers' cleanup runs and no partial file is left; the flag
    also stops a writer at its next chunk when Python dropped the exception (see ``INTERRUPTED``)."""
    INTERRUPTED.set()
    if signum == signal.SIGINT:
        raise KeyboardInterrupt
    raise SystemExit(128 + signum)


for command in (fit, sample, info, evaluate_command, augment_command, metadata_command, demo):
    main.add_command(command)
