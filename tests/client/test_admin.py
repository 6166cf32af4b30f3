"""The admin client against a real broker."""

import pytest

from kafkalite_client import Admin, Consumer, NewTopic, Producer, TopicPartition
from kafkalite_client.errors import KafkaError, TopicAlreadyExistsError, UnknownTopicOrPartitionError


async def test_topics_lifecycle(bootstrap, request):
    name = f"admin-{request.node.name}"
    async with Admin(bootstrap) as admin:
        await admin.create_topics([NewTopic(name, 3, configs={"retention.ms": "123456"})])
        assert name in await admin.list_topics()
        with pytest.raises(TopicAlreadyExistsError):
            await admin.create_topic(name, 3)
        await admin.create_topic(name, 3, if_not_exists=True)
        described = (await admin.describe_topics([name]))[name]
        assert [p.partition for p in described.partitions] == [0, 1, 2]
        assert all(p.leader >= 0 for p in described.partitions)
        assert (await admin.describe_configs(name))["retention.ms"] == "123456"
        await admin.alter_configs(name, {"retention.ms": "999"})
        assert (await admin.describe_configs(name, keys=["retention.ms"]))["retention.ms"] == "999"
        await admin.create_partitions({name: 5})
        assert len((await admin.describe_topics([name]))[name].partitions) == 5
        await admin.delete_topics([name])
        assert name not in await admin.list_topics()
        with pytest.raises(UnknownTopicOrPartitionError):
            await admin.delete_topics([name])
        await admin.delete_topics([name], if_exists=True)


async def test_delete_records_moves_the_log_start(bootstrap, new_topic):
    topic = await new_topic(1)
    async with Producer(bootstrap) as p:
        for i in range(10):
            await p.enqueue(topic, str(i))
    async with Admin(bootstrap) as admin:
        assert await admin.delete_records({(topic, 0): 4}) == {TopicPartition(topic, 0): 4}
    async with Consumer(bootstrap_servers=bootstrap) as c:
        c.assign([(topic, 0)])
        await c.seek_to_beginning()
        assert await c.position((topic, 0)) == 4


async def test_groups_offsets_lag_reset_delete(bootstrap, new_topic):
    topic = await new_topic(2)
    group = f"g-{topic}"
    async with Producer(bootstrap) as p:
        for i in range(10):
            await p.enqueue(topic, str(i), partition=i % 2)
    async with Consumer(topic, bootstrap_servers=bootstrap, group_id=group, auto_offset_reset="earliest",
                        heartbeat_interval_ms=100) as c:
        got = 0
        while got < 6:
            got += sum(len(r) for r in (await c.getmany(timeout_ms=2000, max_records=6 - got)).values())
        await c.commit()
        async with Admin(bootstrap) as admin:
            listed = {g.group_id: g for g in await admin.list_groups()}
            assert listed[group].protocol_type == "consumer"
            described = (await admin.describe_groups([group]))[group]
            assert described.state == "Stable" and described.protocol in ("range", "roundrobin")
            [member] = described.members
            assert sorted(member.assignment[topic]) == [0, 1]
            with pytest.raises(KafkaError, match="active members"):
                await admin.reset_group_offsets(group, [topic], to="earliest")
    async with Admin(bootstrap) as admin:
        offsets = await admin.list_group_offsets(group)
        assert sum(offsets.values()) == 6
        lag = await admin.group_lag(group)
        assert sum(lag_.lag for lag_ in lag.values()) == 4
        assert all(lag_.end_offset == 5 for lag_ in lag.values())
        assert await admin.reset_group_offsets(group, [topic], to="earliest") == \
            {TopicPartition(topic, 0): 0, TopicPartition(topic, 1): 0}
        assert sum(x.lag for x in (await admin.group_lag(group)).values()) == 10
        await admin.reset_group_offsets(group, offsets={(topic, 0): 3})
        assert (await admin.list_group_offsets(group))[TopicPartition(topic, 0)] == 3
        await admin.delete_group_offsets(group, [(topic, 1)])
        assert TopicPartition(topic, 1) not in await admin.list_group_offsets(group)
        await admin.delete_groups([group])
        assert group not in {g.group_id for g in await admin.list_groups()}
