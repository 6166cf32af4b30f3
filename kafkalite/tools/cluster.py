"""`kafkalite cluster info`: the cluster id, its brokers (the controller starred) and the API versions the
broker supports, as `rpk cluster info` shows them."""

from __future__ import annotations

from kafkalite_client.errors import raise_for_code

from kafkalite.protocol.messages import APIS
from kafkalite.tools.common import Exit, print_table
from kafkalite.tools.topics import admin_for

API_VERSIONS = 18


async def api_versions(admin) -> list[dict]:
    """The broker's own version ranges (the connection keeps only the versions it chose)."""
    conn = await admin.cluster.any_connection()
    response = await conn.request(API_VERSIONS, {"client_software_name": "kafkalite-cli",
                                                 "client_software_version": "0"})
    raise_for_code(response["error_code"], f"asking {conn.address} for its API versions")
    return sorted(response["api_keys"], key=lambda a: a["api_key"])


async def info(args) -> int:
    async with admin_for(args) as admin:
        await admin.cluster.refresh()
        versions = await api_versions(admin)
        cluster = admin.cluster
    print("CLUSTER\n=======")
    print(cluster.cluster_id or "-")
    print("\nBROKERS\n=======")
    rows = [["ID", "HOST", "PORT"]]
    for node, (host, port) in sorted(cluster.brokers.items()):
        rows.append([f"{node}*" if node == cluster.controller_id else node, host, port])
    print_table(rows)
    print("\nAPI VERSIONS\n============")
    rows = [["API", "KEY", "MIN", "MAX"]]
    for api in versions:
        name = APIS[api["api_key"]].name if api["api_key"] in APIS else "?"
        rows.append([name, api["api_key"], api["min_version"], api["max_version"]])
    print_table(rows)
    return Exit.OK
