"""BlazeRPC plugin: Prometheus metrics."""
