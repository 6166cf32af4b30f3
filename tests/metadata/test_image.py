"""The metadata image: deltas make new images, and the replica manager learns what changed."""

import uuid

from kafkalite.metadata.image import (
    BrokerInfo, MetadataDelta, MetadataImage, PartitionInfo, TopicImage, changed_partitions,
)
from kafkalite.protocol.api_keys import ApiKey, api_key_name
from kafkalite.protocol.messages import APIS

LEADING = PartitionInfo(replicas=(1, 2), leader=1, leader_epoch=0, isr=(1, 2))


def topic(name: str, partitions: int, topic_id: uuid.UUID | None = None) -> TopicImage:
    return TopicImage(name, topic_id or uuid.uuid4(), (LEADING,) * partitions)


def test_a_delta_makes_a_new_image_and_leaves_the_old_one_alone():
    old = MetadataImage()
    new = old.apply(MetadataDelta(topics={"t": topic("t", 2)}, brokers={1: BrokerInfo(1, "h", 1)},
                                  controller_id=1, cluster_id="c"))
    assert old.topic("t") is None and old.cluster_id == ""
    assert new.partition("t", 1) == LEADING and new.partition("t", 2) is None
    assert new.leader_of("t", 0) == BrokerInfo(1, "h", 1)
    assert new.topic_name(new.topic("t").topic_id) == "t"
    assert new.partition("t", 0).offline_replicas(new.brokers) == [2]
    gone = new.apply(MetadataDelta(removed_topics=frozenset(["t"])))
    assert gone.topic("t") is None and gone.topics_by_id == {}


def test_changed_partitions_names_new_moved_and_removed_partitions():
    t = topic("t", 2)
    before = MetadataImage().apply(MetadataDelta(topics={"t": t, "u": topic("u", 1)}))
    moved = PartitionInfo(replicas=(1, 2), leader=2, leader_epoch=1, isr=(2,))
    after = before.apply(MetadataDelta(
        topics={"t": TopicImage("t", t.topic_id, (LEADING, moved, LEADING))}, removed_topics=frozenset(["u"])))
    changed, gone = changed_partitions(before, after)
    assert sorted(changed) == [("t", 1), ("t", 2)]
    assert gone == [("u", 0)]
    recreated = after.apply(MetadataDelta(topics={"t": topic("t", 1)}))  # same name, new topic id
    changed, gone = changed_partitions(after, recreated)
    assert changed == [("t", 0)] and sorted(gone) == [("t", 0), ("t", 1), ("t", 2)]


def test_every_api_we_speak_has_its_name_in_the_api_key_enum():
    for key, api in APIS.items():
        assert ApiKey[api_key_name(api.name)] == key, api.name
