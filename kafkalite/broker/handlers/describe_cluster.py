"""DescribeCluster (key 60): versions 0-1 (v1: endpoint_type). This broker is the whole cluster and its controller."""

from __future__ import annotations

from kafkalite.broker.registry import handler
from kafkalite.protocol.errors import ErrorCode

BROKER_ENDPOINT, CONTROLLER_ENDPOINT = 1, 2

# Kafka's AclOperation codes that apply to the cluster resource; without an authorizer all are allowed.
# CREATE ALTER DESCRIBE CLUSTER_ACTION DESCRIBE/ALTER_CONFIGS IDEMPOTENT_WRITE
_CLUSTER_OPERATIONS = (5, 7, 8, 9, 10, 11, 12)
ALL_CLUSTER_OPERATIONS = sum(1 << op for op in _CLUSTER_OPERATIONS)
OPERATIONS_NOT_REQUESTED = -(2**31)


@handler("DescribeCluster")
async def handle(ctx, request):
    image = ctx.metadata.image
    response = {"throttle_time_ms": 0, "error_code": 0, "error_message": None, "endpoint_type": BROKER_ENDPOINT,
                "cluster_id": image.cluster_id, "controller_id": image.controller_id, "brokers": []}
    wanted = request["endpoint_type"]  # v0 decodes as 1 (brokers)
    if wanted == CONTROLLER_ENDPOINT:
        response["error_code"] = ErrorCode.MISMATCHED_ENDPOINT_TYPE
        response["error_message"] = "The request was sent to an endpoint of type BROKER, but we wanted CONTROLLER"
        return response
    if wanted != BROKER_ENDPOINT:
        response["error_code"] = ErrorCode.UNSUPPORTED_ENDPOINT_TYPE
        response["error_message"] = f"Unsupported endpoint type {wanted}"
        return response
    response["brokers"] = [{"broker_id": b.node_id, "host": b.host, "port": b.port, "rack": b.rack}
                           for b in sorted(image.brokers.values(), key=lambda b: b.node_id)]
    response["cluster_authorized_operations"] = (
        ALL_CLUSTER_OPERATIONS if request["include_cluster_authorized_operations"] else OPERATIONS_NOT_REQUESTED)
    return response
