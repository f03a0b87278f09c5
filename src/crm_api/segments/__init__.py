"""Segments: customers grouped by a condition, a scorer's verdict or by hand; membership is
materialised, refreshed in SQL, and every entry and exit is an event."""
