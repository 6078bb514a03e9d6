"""Planning: validates plan approvals from upstream and requests one deliberation per (task, role)."""
