"""Loopback fakes used by tests and benchmarks: DNS, TCP, TLS and HTTP servers."""
