"""Network architectures (our own nn.Modules, matching the published tensor names)."""
