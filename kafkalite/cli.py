"""The `kafkalite` command. `kafkalite serve` runs the broker; the client tools live beside it."""

from __future__ import annotations

import argparse
import sys

from kafkalite.config import add_serve_arguments, load_config


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kafkalite", description="A Kafka-compatible broker and its tools.")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the broker")
    add_serve_arguments(serve)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "serve":
        try:
            config = load_config(args)
        except (ValueError, OSError) as e:
            print(f"kafkalite: {e}", file=sys.stderr)
            return 2
        from kafkalite.server import run

        run(config)
        return 0
    parser.error(f"unknown command {args.command}")
    return 2


if __name__ == "__main__":
    sys.exit(main())
