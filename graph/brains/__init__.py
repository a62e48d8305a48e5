"""Brains: chat models that decide the next tool call."""
