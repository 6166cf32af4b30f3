"""`python -m kafkalite` serves, exactly as `kafkalite serve` does; `python -m kafkalite TOOL ...` runs a tool."""

import sys

from kafkalite.cli import COMMANDS, main

if __name__ == "__main__":
    args = sys.argv[1:]
    if not args or args[0] not in COMMANDS:
        args = ["serve", *args]  # flags only (or --help): the broker
    sys.exit(main(args))
