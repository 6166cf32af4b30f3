"""ElectLeaders (key 43): versions 0-2. Preferred-replica (0) or unclean (1) leader elections, as
kafka-leader-election and Admin.electLeaders ask for. Null topic_partitions: every partition (for preferred
elections, those whose leader is not their preferred replica)."""

from __future__ import annotations

from kafkalite.broker.registry import handler
from kafkalite.protocol.errors import ErrorCode

PREFERRED, UNCLEAN = 0, 1


@handler("ElectLeaders")
async def handle(ctx, request):
    election = request["election_type"] if ctx.api_version >= 1 else PREFERRED
    if election not in (PREFERRED, UNCLEAN):
        return {"throttle_time_ms": 0, "error_code": ErrorCode.INVALID_REQUEST, "replica_election_results": []}
    image = ctx.metadata.image
    wanted = request["topic_partitions"]
    if wanted is None:
        wanted = [{"topic": name, "partitions": [i for i, p in enumerate(t.partitions)
                                                  if election == UNCLEAN or p.leader != p.replicas[0]]}
                  for name, t in sorted(image.topics.items())]
    results = []
    for entry in wanted:
        partitions = []
        for index in entry["partitions"]:
            code = await ctx.metadata.elect_leader(entry["topic"], index, election)
            partitions.append({"partition_id": index, "error_code": code,
                               "error_message": None if code == ErrorCode.NONE else ErrorCode(code).name})
        if partitions:
            results.append({"topic": entry["topic"], "partition_result": partitions})
    return {"throttle_time_ms": 0, "error_code": 0, "replica_election_results": results}
