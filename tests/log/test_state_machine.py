"""Hypothesis state machine: any sequence of appends (by changing leader epochs), reads, flushes, checkpoints,
truncations, DeleteRecords, index damage, clean restarts, crashes (also in the middle of an append) and recoveries
keeps every fsynced offset readable with its original bytes, keeps offsets dense, and keeps the leader-epoch
checkpoint naming the epoch of every batch."""

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from kafkalite.log import LogConfig
from kafkalite.log.fs_faulty import FaultyFileSystem, SimulatedCrash
from kafkalite.protocol.record_batch import iter_batches

from logstore_helpers import DIR, batch, open_log

CONFIG = LogConfig(segment_bytes=320, index_interval_bytes=100)


class LogMachine(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        self.fs = FaultyFileSystem(seed=1)
        self.log = open_log(self.fs, CONFIG)
        self.batches: list[tuple[int, bytes]] = []  # model: (base offset, stored bytes), in offset order
        self.end = 0
        self.start = 0
        self.flushed = 0
        self.counter = 0
        self.epoch = 0  # the leader epoch appends are stamped with

    def _new_batch(self, records):
        self.counter += 1
        return batch(*[b"%d-%d" % (self.counter, i) + b"." * (self.counter % 40) for i in range(records)],
                     ts=1000 + self.counter)

    def _model_append(self, base, data):
        assert base == self.end
        self.batches.append((base, data))
        self.end = base + _count(data)

    def _cut(self, n):
        """Keep the first n batches of the model."""
        if n < len(self.batches):
            self.end = self.batches[n][0]
            del self.batches[n:]
        self.start = min(self.start, self.end)
        self.flushed = min(self.flushed, self.end)

    @rule(records=st.integers(1, 3), new_epoch=st.booleans())
    def append(self, records, new_epoch):
        self.epoch += new_epoch
        raw = self._new_batch(records)
        result = self.log.append(raw, leader_epoch=self.epoch)
        self._model_append(result.base_offset, bytes(raw))

    @rule(data=st.data())
    def read(self, data):
        if self.end == self.start:
            assert self.log.read(self.start, 100) == []
            return
        offset = data.draw(st.integers(self.start, self.end - 1))
        got = next(iter_batches(self.log.read(offset, data.draw(st.integers(0, 500)))[0]))
        base, stored = max((b, d) for b, d in self.batches if b <= offset)
        assert bytes(got.buf) == stored

    @rule()
    def flush(self):
        self.flushed = self.log.flush()
        assert self.flushed == self.end

    @rule()
    def checkpoint(self):
        self.log.checkpoint()
        self.flushed = self.end

    @rule(data=st.data())
    def truncate(self, data):
        offset = data.draw(st.integers(self.start, self.end))
        new_end = self.log.truncate_to(offset)
        self._cut(len([1 for b, d in self.batches if b + _count(d) <= offset]))
        assert new_end == self.end

    @rule(data=st.data())
    def delete_records(self, data):
        offset = data.draw(st.integers(self.start, self.end))
        assert self.log.delete_records(offset) == max(offset, self.start)
        self.start = max(offset, self.start)

    @rule()
    def damage_index(self):
        for name in self.fs.listdir(DIR):
            if name.endswith(".index"):
                self.fs.remove(f"{DIR}/{name}")
                break
        self._restart("none")

    @rule()
    def clean_restart(self):
        self.log.close()
        self.log = open_log(self.fs, CONFIG)
        assert self.log.recovery.clean
        self.flushed = self.end

    @rule(mode=st.sampled_from(["all", "some", "none"]))
    def crash(self, mode):
        self._restart(mode)

    @rule(step=st.integers(0, 8), torn=st.booleans(), mode=st.sampled_from(["all", "some", "none"]),
          records=st.integers(1, 3))
    def crash_during_append(self, step, torn, mode, records):
        raw = self._new_batch(records)
        self.fs.crash_after(step, torn=torn)
        appended = False
        try:
            result = self.log.append(raw, leader_epoch=self.epoch)
            appended = True
            self.log.flush()
            self.flushed = self.end + _count(raw)
        except SimulatedCrash:
            pass
        if appended:  # acknowledged as written: a process crash must keep it
            self._model_append(result.base_offset, bytes(raw))
            self._restart(mode)
        else:  # the crash hit inside append: it may or may not be there
            self._restart(mode, maybe=(self.end, _with_base(bytes(raw), self.end, self.epoch)))

    def _restart(self, mode, maybe=None):
        self.fs.restart(lose_unsynced=mode)
        self.log = open_log(self.fs, CONFIG)
        end = self.log.log_end_offset
        assert end >= self.flushed, f"fsynced offsets lost: end {end} < flushed {self.flushed}"
        if mode == "none":
            assert end >= self.end, "a process crash lost written data"
        model = list(self.batches) + ([maybe] if maybe else [])
        start = min(self.start, end)
        stored = _read_everything(self.log, start)
        expected = [(b, d) for b, d in model if b + _count(d) > start]
        assert stored == expected[: len(stored)], "recovered bytes differ from what was appended"
        if maybe and end > self.end:
            self._model_append(*maybe)
        self._cut(len([1 for b, d in self.batches if b + _count(d) <= end]))
        assert end == self.end
        self.flushed = end

    @invariant()
    def offsets_are_dense_and_match(self):
        assert self.log.log_end_offset == self.end
        assert self.log.log_start_offset == self.start
        assert self.log.high_watermark == self.end
        for (b1, d1), (b2, _) in zip(self.batches, self.batches[1:]):
            assert b1 + _count(d1) == b2

    @invariant()
    def leader_epochs_name_every_batchs_epoch(self):
        entries = self.log.leader_epochs
        assert all(self.start <= start <= self.end for _, start in entries)  # = end: a log emptied by DeleteRecords
        for base, data in self.batches:
            if base + _count(data) > self.start:
                owner = [epoch for epoch, start in entries if start <= max(base, self.start)]
                assert owner and owner[-1] == next(iter_batches(data)).partition_leader_epoch


def _count(data: bytes) -> int:
    return next(iter_batches(data)).last_offset_delta + 1


def _with_base(data: bytes, base: int, epoch: int) -> bytes:
    return base.to_bytes(8, "big") + data[8:12] + epoch.to_bytes(4, "big") + data[16:]


def _read_everything(log, start):
    out, offset = [], start
    while offset < log.log_end_offset:
        for b in iter_batches(log.read(offset, 300)[0]):
            if b.last_offset >= offset:
                out.append((b.base_offset, bytes(b.buf)))
            offset = max(offset, b.next_offset)
    return out


LogMachine.TestCase.settings = settings(max_examples=200, stateful_step_count=40, deadline=None,
                                        suppress_health_check=[HealthCheck.too_slow])
TestLogMachine = LogMachine.TestCase
