"""Anonymised visit statistics: events, classification, writer, stores and reports."""
