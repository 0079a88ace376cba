"""`make mutation`: mutation testing of the domain and service layers and of the platform's messaging and
auth code (docs/testing.md)."""
