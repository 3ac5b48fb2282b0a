"""status-reporter: records an adapter container's result as a condition on its Kubernetes Job."""

__version__ = "0.1.0"
