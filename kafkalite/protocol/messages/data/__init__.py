"""Data schemas: versioned structures carried inside messages or records, not APIs (so not in ApiVersions).

Encoded and decoded with `kafkalite.protocol.codec.encode_data` / `decode_data`.
"""
