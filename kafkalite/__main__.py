"""`python -m kafkalite` serves, exactly as `kafkalite serve` does; `python -m kafkalite TOOL ...` runs a tool."""

import sys

from kafkalite.cli import main

if __name__ == "__main__":
    sys.exit(main(serve_when_bare=True))
