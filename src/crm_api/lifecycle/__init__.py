"""Lifecycle: a configurable stage machine and each customer's transitions through it."""
