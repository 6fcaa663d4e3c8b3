"""The from-scratch numpy CNN: layers with forward/backward, the network, optimizers, gradcheck."""
