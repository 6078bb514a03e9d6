"""Collector: gathers proposal outcomes per deliberation and emits its one result."""
