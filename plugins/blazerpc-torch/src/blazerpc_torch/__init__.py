"""BlazeRPC plugin: PyTorch tensors and modules."""
