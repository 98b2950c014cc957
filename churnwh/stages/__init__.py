"""Build stages that join the warehouse and the model: train, score, explain, monitor, the registry."""
