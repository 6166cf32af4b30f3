from kafkalite.protocol.errors import DecodeError, ErrorCode


def test_numbers_names_and_retriable():
    cases = {
        0: ("NONE", False),
        -1: ("UNKNOWN_SERVER_ERROR", False),
        2: ("CORRUPT_MESSAGE", True),
        3: ("UNKNOWN_TOPIC_OR_PARTITION", True),
        10: ("MESSAGE_TOO_LARGE", False),
        16: ("NOT_COORDINATOR", True),
        17: ("INVALID_TOPIC_EXCEPTION", False),
        21: ("INVALID_REQUIRED_ACKS", False),
        27: ("REBALANCE_IN_PROGRESS", False),
        35: ("UNSUPPORTED_VERSION", False),
        45: ("OUT_OF_ORDER_SEQUENCE_NUMBER", False),
        56: ("KAFKA_STORAGE_ERROR", True),
        87: ("INVALID_RECORD", False),
    }
    for code, (name, retriable) in cases.items():
        error = ErrorCode(code)
        assert error.name == name and error == code and error.retriable is retriable
        assert ErrorCode[name] is error


def test_codes_are_unique_and_int_compatible():
    values = [e.value for e in ErrorCode]
    assert len(values) == len(set(values))
    assert ErrorCode.UNSUPPORTED_VERSION + 0 == 35


def test_decode_error_is_a_value_error():
    assert issubclass(DecodeError, ValueError)
