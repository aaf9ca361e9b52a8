"""Training a pack: the LightningModule (module.py), the optimizer and its per-member state (optim.py), the
penalty and gradient noise (penalty.py), and the member-aware callbacks (callbacks.py)."""
