"""Fitting the small MLP ensembles of ``tools/nets/mlp.py`` (the verifier, the noise-level regressor)."""

from __future__ import annotations

from typing import Callable

import numpy as np


def fit_ensemble(x: np.ndarray, y: np.ndarray, hidden: int, n_out: int, members: int, epochs: int, batch: int,
                 loss: Callable) -> tuple[np.ndarray, np.ndarray, list[dict]]:
    """(mean, std, half-precision state dicts): each member on a bootstrap sample of the standardised
    rows, AdamW with a cosine schedule; ``loss(net_output, target)``."""
    import torch

    from restoreagent.tools.nets.mlp import make_mlp

    mean, std = x.mean(0), x.std(0) + 1e-4
    states = []
    for m in range(members):
        torch.manual_seed(m)
        net = make_mlp(x.shape[1], hidden, n_out)
        opt = torch.optim.AdamW(net.parameters(), lr=2e-3, weight_decay=1e-4)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs)
        xt = (torch.as_tensor(x) - torch.as_tensor(mean)) / torch.as_tensor(std)
        yt = torch.as_tensor(y)
        idx = torch.randint(0, len(xt), (len(xt),))  # a bootstrap sample per member
        xt, yt = xt[idx], yt[idx]
        for _ in range(epochs):
            perm = torch.randperm(len(xt))
            for b in range(0, len(xt), batch):
                j = perm[b:b + batch]
                value = loss(net(xt[j]), yt[j])
                opt.zero_grad()
                value.backward()
                opt.step()
            sched.step()
        states.append({k: v.half() for k, v in net.state_dict().items()})
        print(f"member {m + 1}/{members} trained", flush=True)
    return mean, std, states
