"""Networks: the Fashion-MNIST CNN (the model sysdl prunes and lowers), the ResNets of the side jobs."""
