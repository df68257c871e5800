"""Training data: synthetic flare pairs and folder loaders."""
