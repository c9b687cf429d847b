"""BlazeRPC plugin: ONNX Runtime models."""
