"""Environment backends and env/step/action nodes."""
