"""A simulated Kubernetes API (plus per-Deployment metrics) for demos and tests."""
