"""Network architectures (our own nn.Modules, matching the published tensor names)."""

# Zero-DCE's curve iterations: here, not in zerodce.py, so that the low-light tools' argument schemas
# can name it without importing torch.
CURVE_STEPS = 8
