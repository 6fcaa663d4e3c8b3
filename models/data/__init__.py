"""Data: Fashion-MNIST (the default), CIFAR-10, image folders, synthetic splits, augmentation transforms.

Imports nothing else of models/ but models.shared."""
