"""sysdl models: the networks and the training jobs that produce the models being benchmarked."""
