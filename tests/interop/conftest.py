from kafka_ref import kafka_reference  # noqa: F401  (a session fixture for every interop test)
