"""Idempotent producer state: duplicates, sequence gaps, epochs, and retries across restarts."""

import pytest

from kafkalite.log import FaultyFileSystem, InvalidProducerEpoch, LogConfig, OutOfOrderSequence

from logstore_helpers import batch, open_log, values

PID = 4000


def produce(log, seq, *vals, epoch=0, pid=PID):
    return log.append(batch(*vals, pid=pid, epoch=epoch, seq=seq))


def test_duplicates_of_any_of_the_last_five_batches_return_the_original_offsets():
    log = open_log(FaultyFileSystem())
    results = [produce(log, 2 * i, b"a%d" % i, b"b%d" % i) for i in range(6)]
    assert [r.base_offset for r in results] == [0, 2, 4, 6, 8, 10]
    for i in range(1, 6):
        again = produce(log, 2 * i, b"a%d" % i, b"b%d" % i)
        assert again.duplicate and again.base_offset == 2 * i and again.last_offset == 2 * i + 1
    assert log.log_end_offset == 12
    with pytest.raises(OutOfOrderSequence):  # batch 0 fell out of the window of five
        produce(log, 0, b"a0", b"b0")


def test_sequence_rules():
    log = open_log(FaultyFileSystem())
    assert produce(log, 17, b"x").base_offset == 0  # unknown producer: any sequence
    with pytest.raises(OutOfOrderSequence):
        produce(log, 19, b"gap")
    with pytest.raises(OutOfOrderSequence):
        produce(log, 17, b"x", b"different length")  # not the same batch, not the next one
    assert produce(log, 18, b"y").base_offset == 1
    with pytest.raises(OutOfOrderSequence):
        produce(log, 5, b"new epoch", epoch=1)  # a new epoch starts at 0
    assert produce(log, 0, b"z", epoch=1).base_offset == 2
    with pytest.raises(InvalidProducerEpoch):
        produce(log, 19, b"old", epoch=0)
    assert produce(log, 0, b"other", pid=PID + 1).base_offset == 3  # producers are independent
    assert log.append(batch(b"plain")).base_offset == 4  # non-idempotent batches are not checked


def test_sequence_wraps_at_int32_max():
    log = open_log(FaultyFileSystem())
    produce(log, 2**31 - 2, b"a", b"b")  # sequences 2^31-2 and 2^31-1
    assert produce(log, 0, b"c").base_offset == 2
    assert produce(log, 2**31 - 2, b"a", b"b").duplicate


@pytest.mark.parametrize("shutdown", ["clean", "kill", "power_cut_after_flush", "checkpoint_then_kill"])
def test_retries_are_deduplicated_across_restarts(shutdown):
    fs = FaultyFileSystem()
    config = LogConfig(segment_bytes=300)
    log = open_log(fs, config)
    for i in range(10):
        produce(log, i, b"v%d" % i)
    if shutdown == "checkpoint_then_kill":
        log.checkpoint()
        produce(log, 10, b"v10")
        produce(log, 11, b"v11")
    if shutdown == "clean":
        log.close()
    elif shutdown == "kill":
        fs.restart(lose_unsynced="none")
    else:
        log.flush()
        fs.restart(lose_unsynced="all")
    log = open_log(fs, config)
    last = log.log_end_offset - 1
    retry = produce(log, last, b"v%d" % last)
    assert retry.duplicate and retry.base_offset == last
    assert produce(log, last + 1, b"next").base_offset == last + 1
    with pytest.raises(OutOfOrderSequence):
        produce(log, last + 5, b"gap")


def test_state_rolls_back_with_truncation_and_lost_tail():
    fs = FaultyFileSystem()
    log = open_log(fs)
    for i in range(6):
        produce(log, i, b"v%d" % i)
    log.checkpoint()  # snapshot at 6
    log.truncate_to(3)  # snapshot at 6 is now beyond the log end: rebuilt from the batches
    assert not produce(log, 3, b"v3-again").duplicate
    assert log.log_end_offset == 4
    for i in range(4, 8):
        produce(log, i, b"w%d" % i)
    log.flush()
    produce(log, 8, b"lost")  # never fsynced
    fs.restart()
    log = open_log(fs)
    assert log.log_end_offset == 8
    assert not produce(log, 8, b"lost").duplicate  # the lost batch is not remembered
    assert values(log)[-1] == b"lost"
