"""Reproducible measurements that write JSON and markdown tables (see docs/)."""
