"""Event contracts and the category taxonomy shared by the service and training."""
