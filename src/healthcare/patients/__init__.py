"""Patients: validation schemas, use cases and queries."""
