"""The `kafkalite` command. `kafkalite serve` runs the broker; the client tools (kafkalite/tools/) live
beside it. This module only wires argparse: each tool is an async function in its tool module."""

from __future__ import annotations

import argparse
import sys

from kafkalite.config import add_serve_arguments, load_config
from kafkalite.tools.common import DEFAULT_BOOTSTRAP, EXIT_MEANINGS


def _exit_codes_epilog() -> str:
    lines = [f"  {int(code):>3}  {meaning}" for code, meaning in EXIT_MEANINGS.items()]
    return "exit codes of the client tools:\n" + "\n".join(lines)


def _with_bootstrap(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("--bootstrap", "-b", metavar="HOST:PORT", default=DEFAULT_BOOTSTRAP,
                        help=f"the broker to talk to (default {DEFAULT_BOOTSTRAP})")
    return parser


def _tool(sub, name: str, run: str, help: str) -> argparse.ArgumentParser:
    """A subcommand that runs `run` ("module:function" in kafkalite.tools, imported only when chosen,
    so that `kafkalite serve` does not load the client library)."""
    parser = _with_bootstrap(sub.add_parser(name, help=help, description=help))
    parser.set_defaults(run=run)
    return parser


def _add_topics(sub) -> None:
    group = sub.add_parser("topics", help="create, list, describe, alter and delete topics")
    cmds = group.add_subparsers(dest="action", required=True, metavar="ACTION")
    create = _tool(cmds, "create", "topics:create", "create a topic")
    create.add_argument("name")
    create.add_argument("--partitions", "-p", type=int, help="number of partitions (default: the broker's num.partitions)")
    create.add_argument("--config", "-c", action="append", metavar="NAME=VALUE", help="a topic config (repeatable)")
    create.add_argument("--if-not-exists", action="store_true", help="succeed when the topic already exists")
    listing = _tool(cmds, "list", "topics:list_", "list topic names, one per line")
    listing.add_argument("--include-internal", action="store_true", help="include __consumer_offsets")
    describe = _tool(cmds, "describe", "topics:describe",
                     "show partitions, leaders and the configs that differ from the defaults")
    describe.add_argument("names", nargs="*", metavar="NAME", help="topics to describe (default: all)")
    delete = _tool(cmds, "delete", "topics:delete", "delete a topic and its data")
    delete.add_argument("name")
    delete.add_argument("--if-exists", action="store_true", help="succeed when the topic does not exist")
    alter = _tool(cmds, "alter", "topics:alter", "change a topic's configs or add partitions")
    alter.add_argument("name")
    alter.add_argument("--config", "-c", action="append", metavar="NAME=VALUE", help="set a config (repeatable)")
    alter.add_argument("--delete-config", action="append", metavar="NAME",
                       help="remove a config override, back to the default (repeatable)")
    alter.add_argument("--partitions", "-p", type=int, help="grow the topic to this many partitions")


def _add_produce(sub) -> None:
    parser = _tool(sub, "produce", "produce:produce", "send each line of stdin as one record")
    parser.add_argument("topic")
    parser.add_argument("--key-separator", "-K", metavar="SEP",
                        help="split each line at the first SEP into key and value (\\t for a tab)")
    parser.add_argument("--compression", "-z", default="none",
                        choices=["none", "gzip", "snappy", "lz4", "zstd"], help="batch compression (default none)")
    parser.add_argument("--acks", "-a", default="all", choices=["all", "-1", "0", "1"],
                        help="acknowledgements to wait for (default all)")
    parser.add_argument("--partition", type=int, help="send every record to this partition")


def _add_consume(sub) -> None:
    parser = _tool(sub, "consume", "consume:consume", "print records, one per line")
    parser.add_argument("topic")
    parser.add_argument("--group", "-g", help="consume as a member of this group and commit offsets")
    parser.add_argument("--from-beginning", action="store_true",
                        help="start at the earliest offset when there is no committed one (default: only new records)")
    parser.add_argument("--print-key", action="store_true", help="print the key before the value")
    parser.add_argument("--key-separator", default="\t", metavar="SEP",
                        help="between key and value with --print-key (default a tab)")
    parser.add_argument("--max-messages", "-n", type=int, metavar="N", help="exit after N records")
    parser.add_argument("--timeout", type=float, metavar="SECONDS",
                        help="exit when no record arrives for this long")
    parser.add_argument("--format", choices=["text", "json"], default="text",
                        help="text: the value (and key); json: one object per record with every field")


def _add_groups(sub) -> None:
    group = sub.add_parser("groups", help="list, describe, delete consumer groups and reset their offsets")
    cmds = group.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = _tool(cmds, "list", "groups:list_", "list group ids, one per line")
    listing.add_argument("--state", action="store_true", help="also show each group's state")
    describe = _tool(cmds, "describe", "groups:describe",
                     "members, assignments, and per partition the committed offset, end offset and lag")
    describe.add_argument("group")
    delete = _tool(cmds, "delete", "groups:delete", "delete an empty group and its committed offsets")
    delete.add_argument("group")
    reset = _tool(cmds, "reset-offsets", "groups:reset_offsets",
                  "commit new offsets for a group that has no active members")
    reset.add_argument("group")
    reset.add_argument("--topic", "-t", action="append", required=True, help="the topic (repeatable)")
    target = reset.add_mutually_exclusive_group(required=True)
    target.add_argument("--to-earliest", action="store_true")
    target.add_argument("--to-latest", action="store_true")
    target.add_argument("--to-offset", type=int, metavar="N")


_NC_DESCRIPTION = """\
Send Kafka protocol requests written as JSON, one per line (from the arguments, else stdin):

  {"api": "Metadata", "version": 8, "body": {"topics": [{"name": "demo"}]}}

"version" is optional (default: the highest that kafkalite and the broker both speak, from
ApiVersions); body fields are optional (each takes its schema default); a bare API name is a request
with an empty body. "api" may also be the API key number. Each response is printed as one JSON line
{"api", "version", "correlation_id", "body"} with snake_case field names. Beside every non-zero
error_code is its error_name; beside every api_key its api_name; uuids appear in Kafka's base64 form;
bytes as text when printable, else {"hex": "..."}; records fields as a list of batches with their
records. In requests, a records field may be given as a list of {"key", "value", "headers"} objects
(sent as one batch), or {"hex": "..."}; bytes as text, {"hex": ...} or {"base64": ...}.
"""


def _add_nc(sub) -> None:
    parser = sub.add_parser(
        "nc", help="send protocol requests written as JSON and print the responses as JSON",
        formatter_class=argparse.RawDescriptionHelpFormatter, description=_NC_DESCRIPTION)
    parser.set_defaults(run="nc:nc")
    parser.add_argument("--bootstrap", "-b", metavar="HOST:PORT",
                        help="the broker (alternatively the first argument)")
    parser.add_argument("requests", nargs="*", metavar="[HOST:PORT] REQUEST",
                        help='JSON requests such as \'{"api": "Metadata", "body": {"topics": null}}\' or bare '
                             "API names; without any, one request per line of stdin")
    parser.add_argument("--hex", action="store_true", help="also show the raw frames both ways (on stderr)")
    parser.add_argument("--raw", action="append", metavar="HEX",
                        help="send this frame as given (size prefix optional) and decode the answer (repeatable)")
    parser.add_argument("--timeout", type=float, default=30.0, metavar="SECONDS",
                        help="how long to wait for each response (default 30)")


COMMANDS = ("serve", "topics", "produce", "consume", "groups", "nc")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kafkalite", description="A Kafka-compatible broker and its tools.",
                                     epilog=_exit_codes_epilog(), formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the broker")
    add_serve_arguments(serve)
    _add_topics(sub)
    _add_produce(sub)
    _add_consume(sub)
    _add_groups(sub)
    _add_nc(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:
        # argparse does not resume a '*' positional after an option (`nc HOST:PORT --hex REQUEST`): take
        # nc's later requests here, and reject anything else as parse_args would.
        if args.command != "nc" or any(e.startswith("-") for e in extra):
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        args.requests += extra
    if args.command == "serve":
        try:
            config = load_config(args)
        except (ValueError, OSError) as e:
            print(f"kafkalite: {e}", file=sys.stderr)
            return 2
        from kafkalite.server import StartupError, run

        try:
            run(config)
        except StartupError as e:
            print(f"kafkalite: {e}", file=sys.stderr)
            return 1
        return 0
    from kafkalite.tools.common import run_tool

    return run_tool(args.run, args)


if __name__ == "__main__":
    sys.exit(main())
