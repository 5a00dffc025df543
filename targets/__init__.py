"""Targets: the bundled platform catalogue and the test-list loaders."""
