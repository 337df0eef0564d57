"""Model loaders shared by several stages (the offline CNN, the packaged sentence model)."""
