"""The admin client: topics (create, delete, list, describe, partitions, configs, delete records) and
consumer groups (list, describe, delete, offsets, lag, reset offsets).

Topic changes go to the controller (Metadata's controller_id), group requests to the group's coordinator.
Errors are raised as the KafkaError subclass of the first failing item, naming the item.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from kafkalite.protocol.api_keys import ApiKey
from kafkalite.protocol.errors import ErrorCode

from kafkalite_client.cluster import Cluster
from kafkalite_client.consumer_protocol import PROTOCOL_TYPE, decode_assignment
from kafkalite_client.errors import error_class, raise_for_code
from kafkalite_client.group import fetch_committed
from kafkalite_client.offsets import EARLIEST, LATEST, list_offsets
from kafkalite_client.records import TopicPartition

CREATE_TOPICS, DELETE_TOPICS, DELETE_RECORDS = ApiKey.CREATE_TOPICS, ApiKey.DELETE_TOPICS, ApiKey.DELETE_RECORDS
DESCRIBE_CONFIGS, ALTER_CONFIGS, INCREMENTAL_ALTER_CONFIGS, CREATE_PARTITIONS = (
    ApiKey.DESCRIBE_CONFIGS, ApiKey.ALTER_CONFIGS, ApiKey.INCREMENTAL_ALTER_CONFIGS, ApiKey.CREATE_PARTITIONS)
LIST_GROUPS, DESCRIBE_GROUPS, DELETE_GROUPS, OFFSET_COMMIT, OFFSET_DELETE = (
    ApiKey.LIST_GROUPS, ApiKey.DESCRIBE_GROUPS, ApiKey.DELETE_GROUPS, ApiKey.OFFSET_COMMIT, ApiKey.OFFSET_DELETE)
TOPIC_RESOURCE, BROKER_RESOURCE = 2, 4
SET, DELETE = 0, 1  # IncrementalAlterConfigs operations


@dataclass
class NewTopic:
    name: str
    num_partitions: int = 1  # -1: the broker's default
    replication_factor: int = 1  # -1: the broker's default
    configs: dict[str, str] = field(default_factory=dict)


@dataclass
class PartitionDescription:
    partition: int
    leader: int
    replicas: list[int]
    isr: list[int]


@dataclass
class TopicDescription:
    name: str
    partitions: list[PartitionDescription]
    is_internal: bool = False


@dataclass
class MemberDescription:
    member_id: str
    client_id: str
    client_host: str
    group_instance_id: str | None
    assignment: dict[str, list[int]]


@dataclass
class GroupDescription:
    group_id: str
    state: str
    protocol_type: str
    protocol: str
    members: list[MemberDescription]


@dataclass
class GroupListing:
    group_id: str
    protocol_type: str
    state: str | None = None


@dataclass
class PartitionLag:
    committed: int | None  # None: nothing committed
    end_offset: int
    lag: int  # from the committed offset, or from the log start when nothing is committed


class Admin:
    """Manages topics (create, delete, describe, partitions, configs, delete records) and consumer groups
    (list, describe, delete, committed offsets, lag, reset offsets). Use as `async with Admin(...) as admin:`.

    Arguments, with their defaults:
      bootstrap_servers='127.0.0.1:9092': 'host:port[,host:port...]' or a list of them.
      client_id='kafkalite-admin': the client id the broker logs see.
      request_timeout_ms=30000: how long to wait for a broker's answer (and the timeout topic changes ask
        the broker to wait for).
      cluster=None: share another client's Cluster (connections and metadata) instead of opening its own;
        then close() leaves it open.
    """

    def __init__(self, bootstrap_servers="127.0.0.1:9092", *, client_id: str = "kafkalite-admin",
                 request_timeout_ms: int = 30000, cluster: Cluster | None = None):
        self._owns_cluster = cluster is None
        self.cluster = cluster or Cluster(bootstrap_servers, client_id=client_id,
                                          request_timeout=request_timeout_ms / 1000,
                                          allow_auto_topic_creation=False)
        self.timeout_ms = request_timeout_ms

    async def start(self) -> "Admin":
        if not self.cluster.brokers:
            await self.cluster.refresh()
        return self

    async def close(self) -> None:
        if self._owns_cluster:
            self.cluster.close()

    async def __aenter__(self) -> "Admin":
        return await self.start()

    async def __aexit__(self, *exc) -> None:
        await self.close()

    async def _controller(self, api_key: int, body: dict) -> dict:
        await self.start()
        node = self.cluster.controller_id
        if node < 0:
            return await self.cluster.request_any(api_key, body)
        return await self.cluster.request(node, api_key, body)

    # Topics -----------------------------------------------------------------------------

    async def create_topics(self, topics: list[NewTopic | str], *, validate_only: bool = False,
                            if_not_exists: bool = False) -> None:
        topics = [NewTopic(t) if isinstance(t, str) else t for t in topics]
        if not topics:
            return
        response = await self._controller(CREATE_TOPICS, {
            "topics": [{"name": t.name, "num_partitions": t.num_partitions,
                        "replication_factor": t.replication_factor, "assignments": [],
                        "configs": [{"name": k, "value": v} for k, v in t.configs.items()]} for t in topics],
            "timeout_ms": self.timeout_ms, "validate_only": validate_only})
        for t in response["topics"]:
            code = t["error_code"]
            if code == ErrorCode.TOPIC_ALREADY_EXISTS and if_not_exists:
                continue
            raise_for_code(code, f"creating topic {t['name']!r}: {t['error_message'] or 'refused'}")
        if not validate_only:
            await self.cluster.refresh()

    async def create_topic(self, name: str, num_partitions: int = 1, replication_factor: int = 1,
                           configs: dict[str, str] | None = None, *, if_not_exists: bool = False) -> None:
        await self.create_topics([NewTopic(name, num_partitions, replication_factor, dict(configs or {}))],
                                 if_not_exists=if_not_exists)

    async def delete_topics(self, names: list[str], *, if_exists: bool = False) -> None:
        if not names:
            return
        await self.start()
        conn = await self.cluster.connection(self.cluster.controller_id) if self.cluster.controller_id >= 0 \
            else await self.cluster.any_connection()
        if conn.version(DELETE_TOPICS) >= 6:
            body = {"topics": [{"name": n} for n in names], "timeout_ms": self.timeout_ms}
        else:
            body = {"topic_names": list(names), "timeout_ms": self.timeout_ms}
        response = await conn.request(DELETE_TOPICS, body)
        for r in response["responses"]:
            code = r["error_code"]
            if code == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION and if_exists:
                continue
            raise_for_code(code, f"deleting topic {r['name']!r}: {r.get('error_message') or 'refused'}")
        for n in names:
            self.cluster.topics.pop(n, None)

    async def list_topics(self, *, include_internal: bool = False) -> list[str]:
        await self.cluster.refresh()
        return sorted(name for name, info in self.cluster.topics.items() if include_internal or not info.is_internal)

    async def describe_topics(self, names: list[str] | None = None) -> dict[str, TopicDescription]:
        await self.start()
        await self.cluster.refresh(None if names is None else list(names))
        out = {}
        for name in names if names is not None else sorted(self.cluster.topics):
            info = self.cluster.topics.get(name)
            if info is None:
                code = self.cluster.topic_errors.get(name, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION)
                raise_for_code(code, f"topic {name!r} does not exist" if code == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
                               else f"describing topic {name!r}")
            out[name] = TopicDescription(name, [
                PartitionDescription(p.partition, p.leader, p.replicas, p.isr)
                for p in sorted(info.partitions.values(), key=lambda p: p.partition)], info.is_internal)
        return out

    async def create_partitions(self, new_totals: dict[str, int], *, validate_only: bool = False) -> None:
        """Grow topics to these partition counts."""
        response = await self._controller(CREATE_PARTITIONS, {
            "topics": [{"name": t, "count": n, "assignments": None} for t, n in new_totals.items()],
            "timeout_ms": self.timeout_ms, "validate_only": validate_only})
        for r in response["results"]:
            raise_for_code(r["error_code"], f"adding partitions to {r['name']!r}: {r['error_message'] or 'refused'}")
        await self.cluster.refresh()

    async def delete_records(self, before: dict) -> dict[TopicPartition, int]:
        """Delete records before these offsets ({partition: offset}, -1 = the high watermark);
        returns the new low watermarks."""
        await self.start()
        by_leader: dict[int, dict[str, list[dict]]] = {}
        for tp, offset in before.items():
            tp = TopicPartition(*tp)
            if tp.topic not in self.cluster.topics:
                await self.cluster.topic(tp.topic)
            leader = self.cluster.leader(*tp)
            by_leader.setdefault(leader, {}).setdefault(tp.topic, []).append(
                {"partition_index": tp.partition, "offset": offset})
        out = {}
        for leader, topics in by_leader.items():
            response = await self.cluster.request(leader, DELETE_RECORDS, {
                "topics": [{"name": t, "partitions": ps} for t, ps in topics.items()], "timeout_ms": self.timeout_ms})
            for t in response["topics"]:
                for p in t["partitions"]:
                    raise_for_code(p["error_code"], f"deleting records of {t['name']}-{p['partition_index']}")
                    out[TopicPartition(t["name"], p["partition_index"])] = p["low_watermark"]
        return out

    # Configs ----------------------------------------------------------------------------

    async def describe_configs(self, topic: str | None = None, *, broker: int | None = None,
                               keys: list[str] | None = None) -> dict[str, str | None]:
        """A topic's (or a broker's) configuration as {name: value}."""
        if (topic is None) == (broker is None):
            raise ValueError("give exactly one of topic and broker")
        await self.start()
        resource = ({"resource_type": TOPIC_RESOURCE, "resource_name": topic} if topic is not None
                    else {"resource_type": BROKER_RESOURCE, "resource_name": str(broker)})
        resource["configuration_keys"] = keys
        body = {"resources": [resource], "include_synonyms": False, "include_documentation": False}
        if broker is not None:
            response = await self.cluster.request(broker, DESCRIBE_CONFIGS, body)
        else:
            response = await self.cluster.request_any(DESCRIBE_CONFIGS, body)
        result = response["results"][0]
        raise_for_code(result["error_code"], f"describing configs of {resource['resource_name']!r}: "
                                             f"{result['error_message'] or 'refused'}")
        return {c["name"]: c["value"] for c in result["configs"]}

    async def alter_configs(self, topic: str, changes: dict[str, str | None], *,
                            validate_only: bool = False) -> None:
        """Set topic configs; a None value removes the override (back to the broker default)."""
        await self.start()
        conn = await self.cluster.any_connection()
        if INCREMENTAL_ALTER_CONFIGS in conn.versions:
            body = {"resources": [{"resource_type": TOPIC_RESOURCE, "resource_name": topic, "configs": [
                {"name": k, "config_operation": DELETE if v is None else SET, "value": v}
                for k, v in changes.items()]}], "validate_only": validate_only}
            response = await conn.request(INCREMENTAL_ALTER_CONFIGS, body)
        else:  # AlterConfigs replaces the whole set: start from the current overrides
            current = await self.describe_configs(topic)
            current.update(changes)
            body = {"resources": [{"resource_type": TOPIC_RESOURCE, "resource_name": topic, "configs": [
                {"name": k, "value": v} for k, v in current.items() if v is not None]}],
                "validate_only": validate_only}
            response = await conn.request(ALTER_CONFIGS, body)
        r = response["responses"][0]
        raise_for_code(r["error_code"], f"altering configs of {topic!r}: {r['error_message'] or 'refused'}")

    # Groups -----------------------------------------------------------------------------

    async def list_groups(self, states: list[str] | None = None) -> list[GroupListing]:
        await self.cluster.refresh()
        out = {}
        for node in sorted(self.cluster.brokers):
            conn = await self.cluster.connection(node)
            response = await conn.request(LIST_GROUPS, {"states_filter": list(states or [])})
            raise_for_code(response["error_code"], f"listing groups on broker {node}")
            for g in response["groups"]:
                out[g["group_id"]] = GroupListing(g["group_id"], g["protocol_type"], g["group_state"] or None)
        listings = sorted(out.values(), key=lambda g: g.group_id)
        if states and conn.version(LIST_GROUPS) < 4:  # older brokers cannot filter
            listings = [g for g in listings if g.state is None or g.state in states]
        return listings

    async def describe_groups(self, group_ids: list[str]) -> dict[str, GroupDescription]:
        await self.start()
        out = {}
        for group_id in group_ids:
            node = await self.cluster.coordinator(group_id)
            response = await self.cluster.request(node, DESCRIBE_GROUPS, {"groups": [group_id]})
            g = response["groups"][0]
            raise_for_code(g["error_code"], f"describing group {group_id!r}")
            members = []
            for m in g["members"]:
                assignment = {}
                if g["protocol_type"] == PROTOCOL_TYPE and m["member_assignment"]:
                    try:
                        assignment = decode_assignment(m["member_assignment"]).partitions
                    except ValueError:
                        pass  # another client's private format
                members.append(MemberDescription(m["member_id"], m["client_id"], m["client_host"],
                                                 m["group_instance_id"], assignment))
            out[group_id] = GroupDescription(g["group_id"], g["group_state"], g["protocol_type"],
                                             g["protocol_data"], members)
        return out

    async def delete_groups(self, group_ids: list[str]) -> None:
        await self.start()
        for group_id in group_ids:
            node = await self.cluster.coordinator(group_id)
            response = await self.cluster.request(node, DELETE_GROUPS, {"groups_names": [group_id]})
            for r in response["results"]:
                raise_for_code(r["error_code"], f"deleting group {r['group_id']!r}")

    async def list_group_offsets(self, group_id: str, partitions=None) -> dict[TopicPartition, int]:
        """Committed offsets of a group: only partitions that have one."""
        await self.start()
        tps = None if partitions is None else [TopicPartition(*tp) for tp in partitions]
        committed = await fetch_committed(self.cluster, group_id, tps)
        return {tp: o for tp, o in sorted(committed.items()) if o >= 0}

    async def group_lag(self, group_id: str, topics: list[str] | None = None) -> dict[TopicPartition, PartitionLag]:
        """Per partition of the group's topics (those with commits, or `topics`): committed, end, lag."""
        committed = await self.list_group_offsets(group_id)
        wanted = set(topics) if topics is not None else {tp.topic for tp in committed}
        tps = []
        for topic in sorted(wanted):
            info = await self.cluster.topic(topic)
            tps += [TopicPartition(topic, p) for p in sorted(info.partitions)]
        if not tps:
            return {}
        ends = await list_offsets(self.cluster, {tp: LATEST for tp in tps})
        starts = await list_offsets(self.cluster, {tp: EARLIEST for tp in tps})
        out = {}
        for tp in tps:
            end = ends[tp][0] if ends.get(tp) else 0
            start = starts[tp][0] if starts.get(tp) else 0
            c = committed.get(tp)
            out[tp] = PartitionLag(c, end, max(0, end - (c if c is not None else start)))
        return out

    async def reset_group_offsets(self, group_id: str, topics: list[str] | None = None, *,
                                  to: str | int = "earliest", timestamp: int | None = None,
                                  offsets: dict | None = None) -> dict[TopicPartition, int]:
        """Commit new offsets for an inactive group: to 'earliest', 'latest', an offset, the first record at
        or after `timestamp` (ms), or explicit `offsets`. Returns what was committed. The coordinator refuses
        (UNKNOWN_MEMBER_ID / non-empty group errors) while the group has members."""
        await self.start()
        if offsets is not None:
            new = {TopicPartition(*tp): int(o) for tp, o in offsets.items()}
        else:
            if topics is None:
                topics = sorted({tp.topic for tp in await self.list_group_offsets(group_id)})
            tps = []
            for topic in topics:
                info = await self.cluster.topic(topic)
                tps += [TopicPartition(topic, p) for p in sorted(info.partitions)]
            if timestamp is not None:
                found = await list_offsets(self.cluster, {tp: timestamp for tp in tps})
                ends = await list_offsets(self.cluster, {tp: LATEST for tp in tps})
                new = {tp: (found[tp] or ends[tp] or (0, 0))[0] for tp in tps}
            elif to in ("earliest", "latest"):
                found = await list_offsets(self.cluster, {tp: EARLIEST if to == "earliest" else LATEST for tp in tps})
                new = {tp: a[0] if a else 0 for tp, a in found.items()}
            elif isinstance(to, int):
                new = {tp: to for tp in tps}
            else:
                raise ValueError(f"to must be 'earliest', 'latest' or an offset, not {to!r}")
        if not new:
            return {}
        by_topic: dict[str, list[dict]] = {}
        for tp, offset in new.items():
            by_topic.setdefault(tp.topic, []).append({"partition_index": tp.partition, "committed_offset": offset,
                                                      "committed_leader_epoch": -1, "committed_metadata": ""})
        node = await self.cluster.coordinator(group_id)
        response = await self.cluster.request(node, OFFSET_COMMIT, {
            "group_id": group_id, "generation_id_or_member_epoch": -1, "member_id": "",
            "group_instance_id": None, "topics": [{"name": t, "partitions": ps} for t, ps in by_topic.items()]})
        for t in response["topics"]:
            for p in t["partitions"]:
                code = p["error_code"]
                if code in (ErrorCode.UNKNOWN_MEMBER_ID, ErrorCode.ILLEGAL_GENERATION,
                            ErrorCode.REBALANCE_IN_PROGRESS):
                    raise error_class(code)(f"group {group_id!r} has active members; stop its consumers "
                                            "before resetting offsets")
                raise_for_code(code, f"committing the offset of {t['name']}-{p['partition_index']}")
        return dict(sorted(new.items()))

    async def delete_group_offsets(self, group_id: str, partitions) -> None:
        await self.start()
        by_topic: dict[str, list[dict]] = {}
        for tp in partitions:
            tp = TopicPartition(*tp)
            by_topic.setdefault(tp.topic, []).append({"partition_index": tp.partition})
        node = await self.cluster.coordinator(group_id)
        response = await self.cluster.request(node, OFFSET_DELETE, {
            "group_id": group_id, "topics": [{"name": t, "partitions": ps} for t, ps in by_topic.items()]})
        raise_for_code(response["error_code"], f"deleting offsets of group {group_id!r}")
        for t in response["topics"]:
            for p in t["partitions"]:
                raise_for_code(p["error_code"], f"deleting the offset of {t['name']}-{p['partition_index']}")
