"""Replicas: who leads what, the high watermark and the waits on it, durability, housekeeping."""
