"""hegui's own Chinese risk classifier: training, the shipped model, evaluation."""
