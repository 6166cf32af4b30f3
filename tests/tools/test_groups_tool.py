"""`kafkalite groups ...` against the folder's broker, with a live `kafkalite consume --group` subprocess as
a member."""

import datetime
import subprocess
import sys

from toolrun import produce_records, run_parallel


def test_describe_reset_and_delete(broker, tool, topic_name):
    name, group = topic_name(), topic_name()
    tool("topics", "create", name, "--partitions", "2")
    tool("produce", name, "-K", ":", input="a:1\nb:2\nc:3\nd:4\ne:5\nf:6\n")

    member = subprocess.Popen([sys.executable, "-m", "kafkalite.cli", "consume", name, "--group", group,
                               "--from-beginning", "--bootstrap", broker.bootstrap],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # Once it has printed every record, it holds both partitions.
        printed = sorted(member.stdout.readline().strip() for _ in range(6))
        assert printed == ["1", "2", "3", "4", "5", "6"]
        described = tool("groups", "describe", group)
        assert "Stable with 1 member(s)" in described.out
        assert "(protocol range)" in described.out or "(protocol roundrobin)" in described.out
        header, *rows = described.out.splitlines()[2:]
        assert header.split() == ["TOPIC", "PARTITION", "CURRENT-OFFSET", "LOG-END-OFFSET", "LAG", "CONSUMER-ID",
                                  "HOST", "CLIENT-ID"]
        assert [row.split()[:2] for row in rows] == [[name, "0"], [name, "1"]]
        assert all(row.split()[7] == "kafkalite-cli" for row in rows)  # both assigned to the one member

        listed, refused, members, verbose, state, subscribed = run_parallel(
            ("groups", "list", "--state"), ("groups", "reset-offsets", group, "--topic", name, "--to-earliest"),
            ("groups", "describe", group, "--members"), ("groups", "describe", group, "--members", "--verbose"),
            ("groups", "describe", group, "--state"), ("groups", "delete-offsets", group, "--topic", name),
            bootstrap=broker.bootstrap)
        assert f"{group}\tStable" in listed.out.splitlines()
        assert refused.code == 1 and "has active members" in refused.err
        header, row = members.out.splitlines()
        assert header.split() == ["GROUP", "CONSUMER-ID", "HOST", "CLIENT-ID", "#PARTITIONS"]
        assert row.split()[0] == group and row.split()[3:] == ["kafkalite-cli", "2"]
        assert verbose.out.splitlines()[1].split()[-1] == f"{name}(0,1)"
        header, row = state.out.splitlines()
        assert header.split() == ["GROUP", "COORDINATOR", "(ID)", "ASSIGNMENT-STRATEGY", "STATE", "#MEMBERS"]
        assert row.split() == [group, f"127.0.0.1:{broker.port}", "(0)", row.split()[3], "Stable", "1"]
        # The broker keeps the offsets of a topic the group's members read.
        assert subscribed.code == 1 and "stop them first" in subscribed.err
        assert subscribed.out.splitlines()[1].split() == [name, "0", "GROUP_SUBSCRIBED_TO_TOPIC"]
    finally:
        member.terminate()  # SIGTERM: it commits what it printed and leaves the group
        out, err = member.communicate(timeout=20)
    assert member.returncode == 0, err
    assert out == "" and "Processed a total of 6 messages" in err

    described = tool("groups", "describe", group)
    assert "Empty with 0 member(s)" in described.out
    for row in described.out.splitlines()[3:]:
        topic, partition, current, end, lag, *rest = row.split()
        assert current == end and lag == "0" and rest == ["-", "-", "-"]

    # Without --execute, a preview: the lags stay 0.
    preview = tool("groups", "reset-offsets", group, "--topic", name, "--to-offset", "1")
    assert preview.code == 0, preview.err
    assert [row.split()[2] for row in preview.out.splitlines()[1:]] == ["1", "1"]
    assert "add --execute" in preview.err
    assert all(row.split()[4] == "0" for row in tool("groups", "describe", group).out.splitlines()[3:])

    reset = tool("groups", "reset-offsets", group, "--topic", name, "--to-offset", "1", "--execute")
    assert (reset.code, reset.err) == (0, "")
    assert [row.split() for row in reset.out.splitlines()] == [
        ["TOPIC", "PARTITION", "NEW-OFFSET"], [name, "0", "1"], [name, "1", "1"]]
    earliest = tool("groups", "reset-offsets", group, "--topic", name, "--to-earliest", "--execute")
    assert [row.split()[2] for row in earliest.out.splitlines()[1:]] == ["0", "0"]
    lags = [row.split()[4] for row in tool("groups", "describe", group).out.splitlines()[3:]]
    assert sum(map(int, lags)) == 6
    latest = tool("groups", "reset-offsets", group, "--topic", name, "--to-latest", "--execute")
    assert sum(int(row.split()[2]) for row in latest.out.splitlines()[1:]) == 6

    deleted = tool("groups", "delete", group)
    assert (deleted.code, deleted.out) == (0, f"Deleted consumer group {group}.\n")
    again, unknown = run_parallel(("groups", "delete", group), ("groups", "describe", group),
                                  bootstrap=broker.bootstrap)
    assert again.code == unknown.code == 4
    assert again.err == unknown.err == f"kafkalite: consumer group '{group}' does not exist\n"


def test_reset_modes_and_delete_offsets(broker, tool, topic_name):
    """--to-datetime, --shift-by, --all-topics and partition lists, on a group without members (in-process)."""
    name, group = topic_name(), topic_name()
    tool("topics", "create", name, "--partitions", "2")
    produce_records(broker.bootstrap, name, [(None, f"r{i}") for i in range(4)], partition=0)
    produce_records(broker.bootstrap, name, [(None, f"s{i}") for i in range(2)], partition=0)  # a later producer
    fifth = int(tool("consume", name, "-p", "0", "--offset", "4", "-n", "1", "-f", "%T").out)
    assert tool("consume", name, "--group", group, "--from-beginning", "--max-messages", "6").code == 0

    def committed() -> list[str]:
        return [row.split()[2] for row in tool("groups", "describe", group).out.splitlines()[3:]]

    def new_offsets(*flags: str) -> list[list[str]]:
        result = tool("groups", "reset-offsets", group, *flags)
        assert result.code == 0, result.err
        return [row.split() for row in result.out.splitlines()[1:]]

    assert committed() == ["6", "0"]
    assert new_offsets("--all-topics", "--shift-by", "-2", "--dry-run") == [[name, "0", "4"], [name, "1", "0"]]
    assert committed() == ["6", "0"]  # a dry run changes nothing
    when = datetime.datetime.fromtimestamp(fifth / 1000, datetime.timezone.utc).isoformat(timespec="milliseconds")
    assert new_offsets("--topic", f"{name}:0", "--to-datetime", when) == [[name, "0", "4"]]
    local = datetime.datetime.fromtimestamp(fifth / 1000).isoformat(timespec="milliseconds")  # no offset: local time
    assert new_offsets("--topic", f"{name}:0", "--to-datetime", local) == [[name, "0", "4"]]
    assert new_offsets("--topic", name, "--to-datetime", "2999-01-01T00:00:00", "--execute") == [
        [name, "0", "6"], [name, "1", "0"]]  # nothing that late: the end
    assert new_offsets("--topic", f"{name}:0", "--shift-by", "-100", "--execute") == [[name, "0", "0"]]
    assert new_offsets("--all-topics", "--shift-by", "3", "--execute") == [[name, "0", "3"], [name, "1", "0"]]
    assert committed() == ["3", "0"]
    assert new_offsets("--topic", f"{name}:1", "--to-offset", "99") == [[name, "1", "0"]]  # kept within the log

    for flags, message in [(("--topic", f"{name}:5", "--to-earliest"), f"topic '{name}' has no partition 5"),
                           (("--topic", f"{name}:x", "--to-earliest"), "is not TOPIC or TOPIC:PARTITION"),
                           (("--topic", name, "--to-datetime", "yesterday"), "--to-datetime 'yesterday' is not"),
                           (("--all-topics", "--to-earliest", "--execute", "--dry-run"), "not allowed with")]:
        result = tool("groups", "reset-offsets", group, *flags)
        assert result.code in (2, 4) and message in result.err, (flags, result)

    deleted = tool("groups", "delete-offsets", group, "--topic", f"{name}:1")
    assert deleted.code == 0, deleted.err
    assert [row.split() for row in deleted.out.splitlines()] == [
        ["TOPIC", "PARTITION", "STATUS"], [name, "1", "Successful"]]
    assert committed() == ["3", "-"]
    unknown = tool("groups", "delete-offsets", f"{group}-nope", "--topic", name)
    assert unknown.code == 4 and "does not exist" in unknown.err
    no_commits = tool("groups", "reset-offsets", f"{group}-nope", "--all-topics", "--to-earliest")
    assert no_commits.code == 4 and "has no committed offsets" in no_commits.err
    unshiftable = tool("groups", "reset-offsets", f"{group}-nope", "--topic", name, "--shift-by", "1")
    assert unshiftable.code == 1 and f"cannot shift the offsets of {name}-0, {name}-1" in unshiftable.err
