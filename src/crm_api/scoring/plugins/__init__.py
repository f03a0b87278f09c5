"""The built-in scorers; each registers through the `crm_api.scorers` entry-point group."""
