"""Integration tests of the berth command itself."""
