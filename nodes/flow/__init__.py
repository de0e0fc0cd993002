"""Flow-control nodes."""
