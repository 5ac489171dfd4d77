"""The scikit-learn estimator (placeholder)."""
