"""Cluster mode's control plane: the metadata store (etcd, or in memory for tests) and what is kept in it."""
