"""`python -m kafkalite` serves, exactly as `kafkalite serve` does."""

import sys

from kafkalite.cli import main

if __name__ == "__main__":
    sys.exit(main(["serve", *sys.argv[1:]]))
