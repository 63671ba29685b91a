"""``python -m synthgen`` runs the CLI."""
from synthgen.cli.main import main

main()
