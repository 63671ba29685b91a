"""``python -m synthgen`` runs the CLI."""
from synthgen.cli import main

main()
