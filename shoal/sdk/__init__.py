"""The Python SDK: `Client` (re-exported as `shoal.Client`) and the `where` filters.

The SDK uses the domain modules of `shoal` and the gRPC plumbing of
`shoal.runtime` (channel options, the error <-> status mapping); nothing here
is imported by the services.
"""
