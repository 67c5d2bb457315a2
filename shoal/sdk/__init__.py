"""The Python SDK: `Client` and `AsyncClient` (re-exported as `shoal.Client` and
`shoal.AsyncClient`), their columnar results and the `where` filters.

Both clients send the calls `calls.py` builds over the channel `channel.py`
opens; results are columns (`columnar.py`). The SDK uses the domain modules of
`shoal` and the gRPC plumbing of `shoal.runtime` (channel options, the error <->
status mapping); nothing here is imported by the services.
"""
