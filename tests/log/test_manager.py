import uuid

import pytest

from kafkalite.log import (
    FileSystem, InvalidConfig, InvalidPartitions, InvalidTopicName, LogConfig, LogManager, StorageError, TopicExists,
    UnknownTopic,
)
from kafkalite.log.fs_faulty import FaultyFileSystem, SimulatedCrash

from logstore_helpers import batch, values


def manager(fs, defaults=None):
    m = LogManager("/kafka", defaults or LogConfig(segment_bytes=500), fs)
    m.open()
    return m


def test_topic_lifecycle_persists_across_restarts():
    fs = FaultyFileSystem()
    m = manager(fs)
    topic_id = m.create_topic("orders", 3, {"retention.ms": "1000", "cleanup.policy": "compact"})
    assert isinstance(topic_id, uuid.UUID)
    m.partition("orders", 2).append(batch(b"hello"))
    m.partition("orders", 2).flush()
    assert m.topics() == ["orders"]
    info = m.topic("orders")
    assert info.partitions == 3 and info.configs == {"retention.ms": "1000", "cleanup.policy": "compact"}
    assert info.config.retention_ms == 1000 and info.config.segment_bytes == 500  # broker default underneath
    fs.restart()  # power cut: metadata was persisted atomically
    m = manager(fs)
    assert m.topic("orders").id == topic_id
    assert values(m.partition("orders", 2)) == [b"hello"]
    m.add_partitions("orders", 5)
    m.partition("orders", 4).append(batch(b"p4"))
    m.alter_configs("orders", {"retention.ms": "5"}, incremental=True)
    assert m.partition("orders", 0).config.retention_ms == 5 and m.topic("orders").config.compact
    m.alter_configs("orders", {"segment.bytes": "1000"})
    assert m.topic("orders").configs == {"segment.bytes": "1000"}
    summary = m.close()
    m = LogManager("/kafka", LogConfig(), fs)
    summary = m.open()
    assert summary.topics == 1 and summary.partitions == 5 and summary.clean_partitions == 5
    assert m.topic("orders").partitions == 5 and values(m.partition("orders", 4)) == [b"p4"]
    m.delete_topic("orders")
    with pytest.raises(UnknownTopic):
        m.topic("orders")
    assert not any(n.startswith("orders") for n in fs.listdir("/kafka"))
    m.create_topic("orders", 1)
    assert values(m.partition("orders", 0)) == []  # a recreated topic starts empty


def test_errors():
    m = manager(FaultyFileSystem())
    for bad in ["", ".", "..", "a" * 250, "with space", "slash/", "ümlaut"]:
        with pytest.raises(InvalidTopicName):
            m.create_topic(bad, 1)
    m.create_topic("a" * 249, 1)
    m.create_topic("ok.name_-1", 1)
    with pytest.raises(TopicExists):
        m.create_topic("ok.name_-1", 1)
    with pytest.raises(InvalidPartitions):
        m.create_topic("zero", 0)
    with pytest.raises(InvalidConfig):
        m.create_topic("bad", 1, {"retention.ms": "soon"})
    assert "bad" not in m.topics()
    with pytest.raises(InvalidPartitions):
        m.add_partitions("ok.name_-1", 1)
    with pytest.raises(UnknownTopic):
        m.partition("ok.name_-1", 1)
    with pytest.raises(UnknownTopic):
        m.delete_topic("nope")


def test_unclean_restart_summary_and_crash_during_delete():
    fs = FaultyFileSystem()
    m = manager(fs)
    m.create_topic("t", 2)
    for p in range(2):
        m.partition("t", p).append(batch(b"x"))
    m.checkpoint()
    fs.restart(lose_unsynced="none")
    m = LogManager("/kafka", LogConfig(), fs)
    summary = m.open()
    assert summary.partitions == 2 and summary.clean_partitions == 0
    fs.crash_after(1)  # meta.json rewrite starts; crash before the rename lands
    with pytest.raises(Exception):
        m.delete_topic("t")
    fs.restart()
    m = manager(fs)
    assert m.topics() in (["t"], [])


def test_metadata_write_failure_leaves_topic_uncreated():
    fs = FaultyFileSystem()
    m = manager(fs)
    fs.fail("fsync")
    with pytest.raises(StorageError):
        m.create_topic("t", 1)
    assert m.topics() == []


def test_retention_and_compaction_through_the_manager(tmp_path):
    m = LogManager(str(tmp_path), LogConfig(segment_bytes=300), FileSystem())
    m.open()
    m.create_topic("logs", 1, {"retention.ms": "10"})
    m.create_topic("state", 1, {"cleanup.policy": "compact"})
    for i in range(20):
        m.partition("logs", 0).append(batch(b"v", ts=1000))
        m.partition("state", 0).append(batch(b"v%d" % i, key=b"k%d" % (i % 2), ts=1000))
    assert m.apply_retention(now_ms=100_000) > 0
    assert m.compact(now_ms=100_000) > 0
    assert m.partition("logs", 0).log_start_offset > 0
    assert m.flush_due(0) == []
    m.close()


def test_housekeeping_goes_one_partition_at_a_time_and_survives_a_failing_one():
    fs = FaultyFileSystem()
    m = manager(fs)
    m.create_topic("a", 2)
    m.create_topic("b", 1)
    for name, index in (("a", 0), ("a", 1), ("b", 0)):
        m.partition(name, index).append(batch(b"v"))
    fs.fail("fsync", path_contains="a-1", count=None)  # partition a-1's checkpoint cannot fsync
    failed = []
    logs = m.housekeeping_logs()
    for log in logs:
        try:
            log.housekeep(now_ms=0)
        except StorageError:
            failed.append(log.directory)
    assert len(logs) == 3
    assert len(failed) == 1 and failed[0].endswith("a-1")
    fs.clear_faults()
    # The healthy partitions got their recovery checkpoint: their data is no longer after the recovery point.
    assert m.partition("a", 0).recovery_point == 1 and m.partition("b", 0).recovery_point == 1


def test_creating_a_topic_fsyncs_only_its_metadata_and_survives_a_power_cut():
    # New partitions are empty: their files need no fsync (the first flush makes them durable), so creating
    # many partitions costs the broker one metadata write, not fsyncs per partition.
    fs = FaultyFileSystem()
    m = manager(fs)
    fs.fail("fsync", path_contains="/kafka/t-", count=None)
    fs.fail("fsync_dir", path_contains="/kafka/t-", count=None)
    m.create_topic("t", 4)
    assert m.partition("t", 3).log_end_offset == 0
    fs.restart()  # a power cut: everything not fsynced is lost, the faults with it
    m = manager(fs)
    assert m.topic("t").partitions == 4
    for p in range(4):
        log = m.partition("t", p)
        assert log.log_end_offset == 0
        log.append(batch(b"after"))
        assert log.flush() == 1
    fs.restart()
    m = manager(fs)
    assert [values(m.partition("t", p)) for p in range(4)] == [[b"after"]] * 4


def test_deleted_topic_files_can_be_removed_later_and_are_gone_after_a_crash_in_between():
    fs = FaultyFileSystem()
    m = manager(fs)
    m.create_topic("t", 2)
    m.partition("t", 0).append(batch(b"x"))
    doomed = m.delete_topic("t", remove_files=False)
    assert len(doomed) == 2 and all(d.endswith("-delete") and fs.exists(d) for d in doomed)
    assert not any(n.startswith("t-") and not n.endswith("-delete") for n in fs.listdir("/kafka"))
    m.create_topic("t", 1)  # the name is free at once
    m.remove_deleted(doomed)
    assert not any(fs.exists(d) for d in doomed)
    m.delete_topic("t", remove_files=False)
    fs.restart(lose_unsynced="none")  # a crash before the files were removed
    m = manager(fs)
    assert m.topics() == [] and not any(n.startswith("t-") for n in fs.listdir("/kafka"))


def test_write_json_is_atomic_and_survives_a_power_cut():
    fs = FaultyFileSystem()
    m = manager(fs)
    assert m.read_json("producer_ids.json") is None
    m.write_json("producer_ids.json", {"next": 1000})
    fs.restart()  # a power cut right after: the rename is durable (the directory was fsynced)
    m = manager(fs)
    assert m.read_json("producer_ids.json") == {"next": 1000}
    for step in range(10):  # a crash at any step of a rewrite leaves the old or the new document
        fs.crash_after(step)
        try:
            m.write_json("producer_ids.json", {"next": 1000 + step})
            finished = True
        except SimulatedCrash:
            finished = False
        fs.restart()
        m = manager(fs)
        if finished:
            assert m.read_json("producer_ids.json") == {"next": 1000 + step}
            break
        assert m.read_json("producer_ids.json") == {"next": 1000}
    assert finished and step > 3
    f = fs.open("/kafka/producer_ids.json")
    f.pwrite(b"{not json", 0)
    f.close()
    with pytest.raises(StorageError):
        m.read_json("producer_ids.json")
