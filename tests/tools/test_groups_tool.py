"""`kafkalite groups ...` as real subprocesses, with a live `kafkalite consume --group` as a member."""

import subprocess
import sys

from toolrun import run_parallel


def test_describe_reset_and_delete(broker, kafkalite, topic_name):
    name, group = topic_name(), topic_name()
    kafkalite("topics", "create", name, "--partitions", "2")
    kafkalite("produce", name, "-K", ":", input="a:1\nb:2\nc:3\nd:4\ne:5\nf:6\n")

    member = subprocess.Popen([sys.executable, "-m", "kafkalite.cli", "consume", name, "--group", group,
                               "--from-beginning", "--bootstrap", broker.bootstrap],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # Once it has printed every record, it holds both partitions.
        printed = sorted(member.stdout.readline().strip() for _ in range(6))
        assert printed == ["1", "2", "3", "4", "5", "6"]
        described = kafkalite("groups", "describe", group)
        assert "Stable with 1 member(s)" in described.out
        assert "(protocol range)" in described.out or "(protocol roundrobin)" in described.out
        header, *rows = described.out.splitlines()[2:]
        assert header.split() == ["TOPIC", "PARTITION", "CURRENT-OFFSET", "LOG-END-OFFSET", "LAG", "CONSUMER-ID",
                                  "HOST", "CLIENT-ID"]
        assert [row.split()[:2] for row in rows] == [[name, "0"], [name, "1"]]
        assert all(row.split()[7] == "kafkalite-cli" for row in rows)  # both assigned to the one member

        listed, refused = run_parallel(("groups", "list", "--state"),
                                       ("groups", "reset-offsets", group, "--topic", name, "--to-earliest"),
                                       bootstrap=broker.bootstrap)
        assert f"{group}\tStable" in listed.out.splitlines()
        assert refused.code == 1 and "has active members" in refused.err
    finally:
        member.terminate()  # SIGTERM: it commits what it printed and leaves the group
        out, err = member.communicate(timeout=20)
    assert member.returncode == 0, err
    assert out == "" and "Processed a total of 6 messages" in err

    described = kafkalite("groups", "describe", group)
    assert "Empty with 0 member(s)" in described.out
    for row in described.out.splitlines()[3:]:
        topic, partition, current, end, lag, *rest = row.split()
        assert current == end and lag == "0" and rest == ["-", "-", "-"]

    # Without --execute, a preview: the lags stay 0.
    preview = kafkalite("groups", "reset-offsets", group, "--topic", name, "--to-offset", "1")
    assert preview.code == 0, preview.err
    assert [row.split()[2] for row in preview.out.splitlines()[1:]] == ["1", "1"]
    assert "add --execute" in preview.err
    assert all(row.split()[4] == "0" for row in kafkalite("groups", "describe", group).out.splitlines()[3:])

    reset = kafkalite("groups", "reset-offsets", group, "--topic", name, "--to-offset", "1", "--execute")
    assert (reset.code, reset.err) == (0, "")
    assert [row.split() for row in reset.out.splitlines()] == [
        ["TOPIC", "PARTITION", "NEW-OFFSET"], [name, "0", "1"], [name, "1", "1"]]
    earliest = kafkalite("groups", "reset-offsets", group, "--topic", name, "--to-earliest", "--execute")
    assert [row.split()[2] for row in earliest.out.splitlines()[1:]] == ["0", "0"]
    lags = [row.split()[4] for row in kafkalite("groups", "describe", group).out.splitlines()[3:]]
    assert sum(map(int, lags)) == 6
    latest = kafkalite("groups", "reset-offsets", group, "--topic", name, "--to-latest", "--execute")
    assert sum(int(row.split()[2]) for row in latest.out.splitlines()[1:]) == 6

    deleted = kafkalite("groups", "delete", group)
    assert (deleted.code, deleted.out) == (0, f"Deleted consumer group {group}.\n")
    again, unknown = run_parallel(("groups", "delete", group), ("groups", "describe", group),
                                  bootstrap=broker.bootstrap)
    assert again.code == unknown.code == 4
    assert again.err == unknown.err == f"kafkalite: consumer group '{group}' does not exist\n"
