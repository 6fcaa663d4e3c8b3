"""Inference: original vs pruned vs MatmulNet on the test set (`sysdl infer-bench`)."""
