"""Monitoring: Prometheus metrics of the API and the status of a tenant's deployment."""
