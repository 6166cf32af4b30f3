"""Control records: the one record of a control batch (attributes bit 5), in Kafka's layouts.

    key     int16 version (0), int16 type: 0 ABORT, 1 COMMIT (a transaction marker)
    value   of a marker (Kafka's EndTxnMarker): int16 version (0), int32 coordinator epoch
"""

from kafkalite.protocol.schema import DataSchema, F

ABORT, COMMIT = 0, 1

CONTROL_RECORD_KEY = DataSchema(
    name="ControlRecordKey",
    min_version=0,
    max_version=0,
    flexible=None,
    fields=(F("type", "int16"),),
)

END_TXN_MARKER = DataSchema(
    name="EndTxnMarker",
    min_version=0,
    max_version=0,
    flexible=None,
    fields=(F("coordinator_epoch", "int32"),),
)
