"""Learning new classes from a teacher (the previous model): loss functions, methods and the training loop."""
