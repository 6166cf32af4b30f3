"""The `kafkalite` client tools: topics, produce, consume, groups and nc.

One module per tool group; `kafkalite.cli` only wires them into argparse. Each tool is an async
function taking the parsed arguments and returning an exit code; `common.run_tool` runs it and turns
every failure into one sentence on stderr and a distinct exit code.
"""
