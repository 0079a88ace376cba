"""Reliable messaging: event store, transactional outbox, relay, consumers with inbox and dead letters."""
