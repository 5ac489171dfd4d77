"""Public forward/backprop (placeholder)."""
