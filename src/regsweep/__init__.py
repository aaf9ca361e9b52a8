"""regsweep: a Hydra + Lightning harness for regularization studies."""
