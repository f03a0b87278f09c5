"""Loyalty programmes: exact points ledgers, tiers and rewards."""
