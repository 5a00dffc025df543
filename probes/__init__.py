"""Probes: network I/O that turns one target into observations (DNS, TCP, TLS, HTTP)."""
