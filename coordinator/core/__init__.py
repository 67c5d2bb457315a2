"""Coordinator logic on domain types; no gRPC and no generated code in here."""
