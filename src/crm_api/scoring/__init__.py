"""Scoring: pluggable models behind churn, lifetime value and segmentation."""
