"""What every Shoal process shares at run time: the gRPC server bootstrap, handler
wrappers, the error <-> status mapping, request ids and logs, metrics, settings,
health, keepalive and balancing options, proto values, periodic work, the data
directory lock and the process lifeline.

The services and the SDK import it; it imports neither. Its pure modules (no
gRPC: `periodic`, `wait`, `cpus`, `data_lock`) may be used by the services'
core layers; tests/unit/test_layering.py checks that core reaches no gRPC.
"""
