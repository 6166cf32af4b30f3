"""The `kafkalite` command. `kafkalite serve` runs the broker; the client tools (kafkalite/tools/) live
beside it. This module only wires argparse: each tool is an async function in its tool module."""

from __future__ import annotations

import argparse
import sys
from importlib import metadata

from kafkalite.config import add_serve_arguments, load_config
from kafkalite.tools.common import BOOTSTRAP_VARIABLE, DEFAULT_BOOTSTRAP, EXIT_MEANINGS, default_bootstrap

DEFAULT_TIMEOUT = 30.0  # seconds topics, groups and cluster commands wait for the broker


def _exit_codes_epilog() -> str:
    lines = [f"  {int(code):>3}  {meaning}" for code, meaning in EXIT_MEANINGS.items()]
    return "exit codes of the client tools:\n" + "\n".join(lines)


def version() -> str:
    try:
        return metadata.version("kafkalite")
    except metadata.PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown"


def _with_bootstrap(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("--bootstrap", "-b", metavar="HOST:PORT", default=default_bootstrap(),
                        help=f"the broker to talk to (default ${BOOTSTRAP_VARIABLE}, else {DEFAULT_BOOTSTRAP})")
    return parser


def _subcommand(sub, name: str, **kwargs) -> argparse.ArgumentParser:
    """A subcommand parser that remembers itself, so that an unknown flag is reported with its usage."""
    parser = sub.add_parser(name, **kwargs)
    parser.set_defaults(parser=parser)
    return parser


def _tool(sub, name: str, run: str, help: str, timeout: bool = False, **kwargs) -> argparse.ArgumentParser:
    """A subcommand that runs `run` ("module:function" in kafkalite.tools, imported only when chosen,
    so that `kafkalite serve` does not load the client library). With `timeout`, a --timeout bounds the
    whole command."""
    parser = _with_bootstrap(_subcommand(sub, name, help=help, description=help, **kwargs))
    parser.set_defaults(run=run)
    if timeout:
        parser.add_argument("--timeout", dest="deadline", type=float, default=DEFAULT_TIMEOUT, metavar="SECONDS",
                            help=f"give up when the broker has not answered in this long (default {DEFAULT_TIMEOUT:g})")
    return parser


def _add_topics(sub) -> None:
    group = _subcommand(sub, "topics", help="create, list, describe, alter and delete topics")
    cmds = group.add_subparsers(dest="action", required=True, metavar="ACTION")
    create = _tool(cmds, "create", "topics:create", "create a topic", timeout=True)
    create.add_argument("name")
    create.add_argument("--partitions", "-p", type=int,
                        help="number of partitions (default: the broker's num.partitions)")
    create.add_argument("--replication-factor", "-r", type=int, metavar="N",
                        help="copies of each partition (default: the broker's; a single kafkalite broker takes only 1)")
    create.add_argument("--config", "-c", action="append", metavar="NAME=VALUE", help="a topic config (repeatable)")
    create.add_argument("--if-not-exists", action="store_true", help="succeed when the topic already exists")
    listing = _tool(cmds, "list", "topics:list_", "list topic names, one per line", timeout=True)
    listing.add_argument("--include-internal", action="store_true", help="include __consumer_offsets")
    describe = _tool(cmds, "describe", "topics:describe",
                     "show partitions, leaders and the configs that differ from the defaults", timeout=True)
    describe.add_argument("names", nargs="*", metavar="NAME", help="topics to describe (default: all)")
    describe.add_argument("--all-configs", action="store_true",
                          help="also list every config in force, with its source and its default")
    delete = _tool(cmds, "delete", "topics:delete", "delete a topic and its data", timeout=True)
    delete.add_argument("name")
    delete.add_argument("--if-exists", action="store_true", help="succeed when the topic does not exist")
    alter = _tool(cmds, "alter", "topics:alter", "change a topic's configs or add partitions", timeout=True)
    alter.add_argument("name")
    alter.add_argument("--config", "-c", action="append", metavar="NAME=VALUE", help="set a config (repeatable)")
    alter.add_argument("--delete-config", action="append", metavar="NAME",
                       help="remove a config override, back to the default (repeatable)")
    alter.add_argument("--partitions", "-p", type=int, help="grow the topic to this many partitions")


def _add_produce(sub) -> None:
    parser = _tool(sub, "produce", "produce:produce", "send each line of stdin (or of --file) as one record")
    parser.add_argument("topic")
    parser.add_argument("--key-separator", "-K", metavar="SEP",
                        help="split each line at the first SEP into key and value (\\t for a tab)")
    parser.add_argument("--header", "-H", action="append", metavar="NAME=VALUE",
                        help="a header on every record (repeatable)")
    parser.add_argument("--parse-headers", action="store_true",
                        help="each line starts with its headers, NAME:VALUE,NAME:VALUE then a tab (as "
                             "kafka-console-producer's parse.headers)")
    parser.add_argument("--null-marker", metavar="TEXT",
                        help="a key or value equal to TEXT is sent as null (a tombstone, for a value)")
    parser.add_argument("--empty-as-null", "-Z", action="store_true",
                        help="an empty value is sent as null (a tombstone), as kcat -Z does")
    parser.add_argument("--file", "-f", metavar="PATH", help="read the lines from PATH instead of stdin")
    parser.add_argument("--max-record-bytes", type=int, default=1048576, metavar="N",
                        help="refuse a record larger than N bytes (default 1048576, as Kafka's max.request.size)")
    parser.add_argument("--compression", "-z", default="none",
                        choices=["none", "gzip", "snappy", "lz4", "zstd"], help="batch compression (default none)")
    parser.add_argument("--acks", "-a", default="all", choices=["all", "-1", "0", "1"],
                        help="acknowledgements to wait for (default all)")
    parser.add_argument("--partition", type=int, help="send every record to this partition")


_FORMAT_HELP = ("print each record by this format, with kcat's -f letters: %%t topic, %%p partition, %%o offset, "
                "%%T timestamp (ms), %%k key, %%s value, %%h headers (name=value,...), %%K key length, %%S value "
                "length (-1 for null), %%%% a percent sign; \\n, \\t as escapes (no newline is added)")


def _add_consume(sub) -> None:
    parser = _tool(sub, "consume", "consume:consume", "print records, one per line")
    parser.add_argument("topics", nargs="*", metavar="TOPIC", help="one or more topics")
    parser.add_argument("--pattern", metavar="REGEX",
                        help="also every topic whose whole name matches REGEX, including those created later")
    parser.add_argument("--group", "-g", help="consume as a member of this group and commit offsets")
    parser.add_argument("--partition", "-p", type=int, action="append", metavar="N",
                        help="read only this partition (repeatable; without --group)")
    parser.add_argument("--offset", "-o", metavar="N|-N|beginning|end",
                        help="start at offset N, N records before the end (-N), the beginning or the end "
                             "(without --group)")
    parser.add_argument("--from-beginning", action="store_true",
                        help="start at the earliest offset when there is no committed one (default: only new records)")
    parser.add_argument("--print-key", action="store_true", help="print the key before the value")
    parser.add_argument("--key-separator", default="\t", metavar="SEP",
                        help="between key and value with --print-key (default a tab)")
    parser.add_argument("--max-messages", "-n", type=int, metavar="N", help="exit after N records")
    parser.add_argument("--timeout", type=float, metavar="SECONDS",
                        help="exit when no record arrives for this long")
    parser.add_argument("--format", choices=["text", "json"], default="text",
                        help="text: the value (and key) as raw bytes; json: one object per record with every "
                             "field, bytes that are not printable UTF-8 as {\"hex\": \"...\"}")
    parser.add_argument("--format-string", "-f", metavar="FMT", help=_FORMAT_HELP)
    parser.add_argument("--isolation-level", choices=["read_uncommitted", "read_committed"],
                        default="read_uncommitted",
                        help="read_committed: only records of committed transactions (and those written outside "
                             "transactions), up to the first open transaction; default read_uncommitted: every record")


def _add_groups(sub) -> None:
    group = _subcommand(sub, "groups", help="list, describe, delete consumer groups and reset their offsets")
    cmds = group.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = _tool(cmds, "list", "groups:list_", "list group ids, one per line", timeout=True)
    listing.add_argument("--state", action="store_true", help="also show each group's state")
    describe = _tool(cmds, "describe", "groups:describe",
                     "members, assignments, and per partition the committed offset, end offset and lag", timeout=True)
    describe.add_argument("group")
    view = describe.add_mutually_exclusive_group()
    view.add_argument("--members", action="store_true", help="one line per member, with its partition count")
    view.add_argument("--state", action="store_true", help="the group's coordinator, assignor, state and size")
    describe.add_argument("--verbose", action="store_true", help="with --members: each member's partitions")
    delete = _tool(cmds, "delete", "groups:delete", "delete an empty group and its committed offsets", timeout=True)
    delete.add_argument("group")
    reset = _tool(cmds, "reset-offsets", "groups:reset_offsets",
                  "show the offsets a reset would commit for a group without active members; "
                  "commit them with --execute", timeout=True)
    reset.add_argument("group")
    topics = reset.add_mutually_exclusive_group(required=True)
    topics.add_argument("--topic", "-t", action="append", metavar="TOPIC[:P,...]",
                        help="the topic, optionally only some partitions (repeatable)")
    topics.add_argument("--all-topics", action="store_true", help="every topic the group has committed offsets for")
    target = reset.add_mutually_exclusive_group(required=True)
    target.add_argument("--to-earliest", action="store_true")
    target.add_argument("--to-latest", action="store_true")
    target.add_argument("--to-offset", type=int, metavar="N")
    target.add_argument("--to-datetime", metavar="YYYY-MM-DDTHH:MM:SS[.sss][+HH:MM]",
                        help="the first record at or after this time (local time without an offset)")
    target.add_argument("--shift-by", type=int, metavar="N",
                        help="move each committed offset by N (negative: back), within the partition's offsets")
    mode = reset.add_mutually_exclusive_group()
    mode.add_argument("--execute", action="store_true", help="commit the new offsets (default: only show them)")
    mode.add_argument("--dry-run", action="store_true", help="only show the new offsets (the default)")
    delete_offsets = _tool(cmds, "delete-offsets", "groups:delete_offsets",
                           "delete a group's committed offsets for some topics or partitions", timeout=True)
    delete_offsets.add_argument("group")
    delete_offsets.add_argument("--topic", "-t", action="append", required=True, metavar="TOPIC[:P,...]",
                                help="the topic, optionally only some partitions (repeatable)")


def _add_cluster(sub) -> None:
    group = _subcommand(sub, "cluster", help="the cluster's id, brokers, controller and API versions")
    cmds = group.add_subparsers(dest="action", required=True, metavar="ACTION")
    _tool(cmds, "info", "cluster:info", "show the cluster id, brokers (* the controller) and the API versions "
                                        "the broker supports", timeout=True)


def _add_partitions(sub) -> None:
    group = _subcommand(sub, "partitions", help="move partitions between brokers and elect their leaders")
    cmds = group.add_subparsers(dest="action", required=True, metavar="ACTION")
    reassign = _tool(cmds, "reassign", "partitions:reassign",
                     "move partitions to other replicas (TOPIC:P=B,B,...), as kafka-reassign-partitions does",
                     timeout=True)
    reassign.add_argument("moves", nargs="+", metavar="TOPIC:P=BROKER,...",
                          help="a partition and its new replicas, the preferred leader first")
    reassign.add_argument("--cancel", action="store_true", help="cancel the moves of these partitions (TOPIC:P)")
    reassign.add_argument("--wait", action="store_true", help="show progress until every move is done")
    _tool(cmds, "list-reassignments", "partitions:list_reassignments", "show the moves in progress", timeout=True)
    elect = _tool(cmds, "elect-leaders", "partitions:elect_leaders",
                  "make each partition's preferred replica its leader (or, --unclean, any live replica)",
                  timeout=True)
    elect.add_argument("partitions", nargs="*", metavar="TOPIC[:P,...]", help="default: every partition")
    elect.add_argument("--unclean", action="store_true",
                       help="elect a replica out of the ISR where none in it is alive (may lose data)")


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
    parser = _subcommand(
        sub, "nc", help="send protocol requests written as JSON and print the responses as JSON",
        formatter_class=argparse.RawDescriptionHelpFormatter, description=_NC_DESCRIPTION)
    parser.set_defaults(run="nc:nc")
    parser.add_argument("--bootstrap", "-b", metavar="HOST:PORT",
                        help=f"the broker (alternatively the first argument; default ${BOOTSTRAP_VARIABLE}, "
                             f"else {DEFAULT_BOOTSTRAP})")
    parser.add_argument("requests", nargs="*", metavar="[HOST:PORT] REQUEST",
                        help='JSON requests such as \'{"api": "Metadata", "body": {"topics": null}}\' or bare '
                             "API names; without any, one request per line of stdin")
    parser.add_argument("--hex", action="store_true", help="also show the raw frames both ways (on stderr)")
    parser.add_argument("--raw", action="append", metavar="HEX",
                        help="send this frame as given (size prefix optional) and decode the answer (repeatable)")
    parser.add_argument("--timeout", type=float, default=30.0, metavar="SECONDS",
                        help="how long to wait for each response (default 30)")


COMMANDS = ("serve", "topics", "produce", "consume", "groups", "cluster", "partitions", "nc")
VERSION_FLAGS = ("--version", "-V")
HELP_FLAGS = ("--help", "-h")

_DESCRIPTION = """\
A Kafka-compatible broker and its tools. With only flags (kafkalite --listen HOST:PORT ...) it serves,
as `kafkalite serve` does; `kafkalite serve --help` lists the broker's flags."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kafkalite", description=_DESCRIPTION,
                                     epilog=_exit_codes_epilog(), formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(*VERSION_FLAGS, action="version", version=f"kafkalite {version()}")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = _subcommand(sub, "serve", help="run the broker")
    add_serve_arguments(serve)
    _add_topics(sub)
    _add_produce(sub)
    _add_consume(sub)
    _add_groups(sub)
    _add_cluster(sub)
    _add_partitions(sub)
    _add_nc(sub)
    return parser


def with_command(argv: list[str], serve_when_bare: bool) -> list[str]:
    """Flags alone mean the broker: `kafkalite --listen ...` serves as `kafkalite serve --listen ...` does.
    `--help` and `--version` stay the command's own; `python -m kafkalite` (serve_when_bare) also serves
    without arguments and shows the broker's flags for --help."""
    if argv and (argv[0] in COMMANDS or argv[0] in VERSION_FLAGS):
        return argv
    if not argv:
        return ["serve"] if serve_when_bare else argv
    if argv[0] in HELP_FLAGS and not serve_when_bare:
        return argv
    return ["serve", *argv] if argv[0].startswith("-") else argv


def main(argv: list[str] | None = None, *, serve_when_bare: bool = False) -> int:
    parser = build_parser()
    argv = with_command(sys.argv[1:] if argv is None else list(argv), serve_when_bare)
    args, extra = parser.parse_known_args(argv)
    if extra:
        # argparse does not resume a '*' positional after an option (`nc HOST:PORT --hex REQUEST`): take
        # nc's later requests here, and reject anything else as parse_args would, with the usage of the
        # subcommand that was given it.
        if args.command != "nc" or any(e.startswith("-") for e in extra):
            args.parser.error(f"unrecognized arguments: {' '.join(extra)}")
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
