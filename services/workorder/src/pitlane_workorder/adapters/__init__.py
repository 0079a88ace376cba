"""What the workorder service talks to: its tables and read models, and the blob store for photos and videos."""
