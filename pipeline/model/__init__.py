"""The recurrent classifier: architecture, distribution strategies, the training loop, inference, scores."""
