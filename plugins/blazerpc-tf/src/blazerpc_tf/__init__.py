"""BlazeRPC plugin: TensorFlow tensors, functions and SavedModels."""
