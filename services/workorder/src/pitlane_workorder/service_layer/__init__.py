"""Command handlers over a unit of work, and the signed customer links."""
