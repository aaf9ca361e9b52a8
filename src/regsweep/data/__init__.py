"""Datasets, batching and augmentation."""
