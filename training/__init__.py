"""Training: synthetic data, dataset building, supervised fine-tuning and evaluation."""
