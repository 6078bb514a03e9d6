"""The evaluation set: approvals the demo never ran, run through the whole mesh and measured (`just eval`)."""
