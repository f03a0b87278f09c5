"""Webhooks: endpoints subscribe to event types; a worker delivers every committed event."""
