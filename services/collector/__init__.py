"""Collector: runs each deliberation as an event-sourced aggregate, phase by phase, to its one result."""
