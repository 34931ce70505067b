"""The audit trail: who read or changed what, when, from where, and whether it was allowed."""
