"""The generic training loop: configs, checkpoints, distributed set-up, experiment folders, data loaders."""
