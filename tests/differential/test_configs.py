"""Whole config resources side by side: every topic config both brokers have, with its value, source, type and
read-only flag; the ones only one side has are exactly the lists in diff_harness; broker settings kafkalite has
carry Kafka's values."""

from __future__ import annotations

from diff_harness import (
    KAFKA_ONLY_TOPIC_CONFIGS, KAFKALITE_ONLY_TOPIC_CONFIGS, configs_by_name, create_topic_body,
    describe_configs_body, normalize_response, wait_for_topic,
)

TOPIC_RESOURCE, BROKER_RESOURCE = 2, 4

# Broker settings whose values differ on purpose.
BROKER_VALUES_THAT_DIFFER = {
    # Kafka leaves these unset (null) and falls back to log.retention.hours and log.flush.scheduler.interval.ms;
    # kafkalite, which has neither fallback, describes the value in force.
    "log.retention.ms", "log.flush.interval.ms",
    # Kafka accepts any number of connections by default; kafkalite stops at 10000 so that a connection flood
    # cannot exhaust its file descriptors.
    "max.connections",
    # The reference Kafka is a single node started with 1; kafkalite keeps Kafka's default (3), which only cluster
    # mode uses (a standalone __consumer_offsets or __transaction_state has one replica whatever they say).
    "offsets.topic.replication.factor", "transaction.state.log.replication.factor", "transaction.state.log.min.isr",
}
# (Kafka, kafkalite) read_only flags that differ: Kafka changes it at run time; kafkalite reads it at start only.
READ_ONLY_THAT_DIFFER = {"producer.id.expiration.ms": (False, True)}
# kafkalite's own settings, which Kafka does not have.
KAFKALITE_ONLY_BROKER_SETTINGS = {"kafkalite.durability"}


def describe_all(pair, resource_type: int, name: str) -> tuple[dict, dict, set, set]:
    """Each side's normalized entries by name (the one-sided ones left out), and each side's full set of names."""
    answers = pair.both("DescribeConfigs", 4, describe_configs_body(resource_type, name, None),
                        normalize=lambda side, answer: answer)
    entries = [configs_by_name(normalize_response(side, answer)["results"][0])
               for side, answer in zip(pair.sides, answers)]
    all_names = [{c["name"] for c in answer["results"][0]["configs"]} for answer in answers]
    return (*entries, *all_names)


def test_topic_configs_match_where_both_have_them(pair, names):
    topic = names()
    overrides = {"retention.ms": "12345", "cleanup.policy": "compact", "max.message.bytes": "2000"}
    pair.same("CreateTopics", 7, create_topic_body(topic, 1, overrides))
    for side in pair.sides:
        wait_for_topic(side, topic, 1)
    kafka, kafkalite, kafka_names, kafkalite_names = describe_all(pair, TOPIC_RESOURCE, topic)
    assert kafka_names - kafkalite_names == KAFKA_ONLY_TOPIC_CONFIGS
    assert kafkalite_names - kafka_names == KAFKALITE_ONLY_TOPIC_CONFIGS
    shared = sorted(set(kafka) & set(kafkalite))
    assert {n: kafkalite[n] for n in shared} == {n: kafka[n] for n in shared}
    assert kafka["retention.ms"]["value"] == "12345" and kafka["retention.ms"]["config_source"] == 1


def test_broker_settings_kafkalite_has_are_kafkas(pair, node_ids):
    assert node_ids["kafka"] == node_ids["kafkalite"]  # conftest starts kafkalite with Kafka's node id
    kafka, kafkalite, kafka_names, kafkalite_names = describe_all(pair, BROKER_RESOURCE, str(node_ids["kafka"]))
    assert kafkalite_names - kafka_names == KAFKALITE_ONLY_BROKER_SETTINGS
    compared = sorted(set(kafkalite) - KAFKALITE_ONLY_BROKER_SETTINGS - BROKER_VALUES_THAT_DIFFER)
    differ = {n: (kafka[n]["value"], kafkalite[n]["value"]) for n in compared
              if kafka[n]["value"] != kafkalite[n]["value"]}
    assert differ == {}
    read_only = {n: (kafka[n]["read_only"], kafkalite[n]["read_only"]) for n in compared
                 if kafka[n]["read_only"] != kafkalite[n]["read_only"]}
    assert read_only == READ_ONLY_THAT_DIFFER
