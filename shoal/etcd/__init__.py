"""etcd: the client Shoal speaks to it with, the stores built on it (collection
catalog, topology, shard membership) and a launcher for a local etcd server.

The stores implement the ports of shoal.catalog and shoal.topology_store.
"""
