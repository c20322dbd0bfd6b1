"""Choosing the torch device a run trains on."""

from __future__ import annotations

import torch

from workbench.errors import UsageError


def pick_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device not in ("cpu", "cuda") and not device.startswith("cuda:"):
        raise UsageError(f"unknown device {device!r}; valid: auto, cpu, cuda, cuda:N")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError(f"device {device!r} requested but no CUDA device is available; use cpu or auto")
    return torch.device(device)
