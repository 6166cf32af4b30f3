"""The shared pieces in-process: the progress line appears only on a terminal; failures map to exit codes."""

import io

from kafkalite_client.errors import GroupAuthorizationFailedError, KafkaConnectionError, UnknownTopicOrPartitionError

from kafkalite.tools.common import Exit, Progress, explain


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_line_only_on_a_terminal():
    tty, pipe = Terminal(), io.StringIO()
    for stream in (tty, pipe):
        progress = Progress("produced", stream)
        progress.add(5)
        progress.clear()
    assert tty.getvalue().startswith("\rproduced 5 records (") and tty.getvalue().endswith("\r\x1b[K")
    assert pipe.getvalue() == ""


def test_failures_read_as_sentences_with_distinct_exit_codes():
    assert explain(UnknownTopicOrPartitionError("topic 'x' does not exist")) == (
        "topic 'x' does not exist (UNKNOWN_TOPIC_OR_PARTITION)", Exit.NOT_FOUND)
    assert explain(GroupAuthorizationFailedError("describing group 'g'")) == (
        "not authorized: describing group 'g' (GROUP_AUTHORIZATION_FAILED)", Exit.NOT_AUTHORIZED)
    sentence, code = explain(KafkaConnectionError("cannot connect to h:1: connection refused"))
    assert code == Exit.UNREACHABLE and sentence.startswith("cannot connect to h:1: connection refused; ")
    assert len(set(Exit)) == len(Exit)
