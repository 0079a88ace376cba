"""pytest plugin: real NATS and PostgreSQL for every test."""
