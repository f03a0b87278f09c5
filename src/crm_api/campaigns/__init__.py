"""Campaigns: registered marketing pushes, matched to the timeline by the label interactions
carry, with their reach, responses and attributed revenue computed in SQL."""
