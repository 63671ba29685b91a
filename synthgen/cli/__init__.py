"""The command line: main.py is the `synthgen` group, one module per command, common.py what they share."""
