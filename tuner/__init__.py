"""Hyperparameter search for the trainer on Ray Tune: Optuna TPE proposes, ASHA prunes."""
