"""Producer ids are never handed out twice, across restarts and power cuts (broker/producer_ids.py)."""

from kafkalite.broker.producer_ids import BLOCK_SIZE, ProducerIdBlocks
from kafkalite.log.fs_faulty import FaultyFileSystem


async def test_ids_after_a_power_cut_never_repeat_those_handed_out_before():
    fs = FaultyFileSystem()
    fs.makedirs("/data")
    first = ProducerIdBlocks("/data", fs)
    before = {await first.allocate() for _ in range(BLOCK_SIZE + 5)}  # two blocks reserved
    fs.restart(lose_unsynced="all")
    after = {await ProducerIdBlocks("/data", fs).allocate() for _ in range(10)}
    assert len(before) == BLOCK_SIZE + 5
    assert not before & after, "a producer id was handed out twice"


async def test_a_restart_starts_at_the_next_block():
    fs = FaultyFileSystem()
    fs.makedirs("/data")
    assert await ProducerIdBlocks("/data", fs).allocate() == 0
    assert await ProducerIdBlocks("/data", fs).allocate() == BLOCK_SIZE
