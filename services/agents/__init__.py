"""Agents: each council member is a Ray actor that asks the LLM server for a proposal."""
