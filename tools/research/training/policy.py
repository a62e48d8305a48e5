"""Oracle labels and training of the learned planner (:mod:`graph.planning.policy`).

Two steps, each resumable, one CPU thread::

    python -m restoreagent.tools.research.training.policy labels --work DIR --count 400 --minutes 40 \\
        --weights-dir ../shared/weights
    python -m restoreagent.tools.research.training.policy train --work DIR [--out checkpoints/policy.pt]

``labels``: case ``i`` is a random crop (208 px; every 4th case 256 px; the assessor is told that the crop
is full resolution) of a ``train``-split
image (CBSD68 + Set14 + Set5; never Kodak24/LIVE1), degraded with MiO combination
``i mod 16`` (seeded), and labelled by :func:`tools.research.evaluation.labels.label_case`: the
prefix tree over its true degradations with every tool, the assessor's features at every
node and the Q-value of every move, false-alarm moves included. Each case is written to
``DIR/labels/<i>.json`` (atomically) as soon as it is done; a restart skips the cases
already there, so an interrupted run resumes. ``--minutes`` stops starting new cases
after that much time; progress goes to stdout and ``DIR/labels.log``. ``--shard K/N`` lets
N processes share one folder; ``--start`` labels another index range, e.g. with a different
``--weights-dir`` (the weight-free tools only), so the ranker also learns those tool sets.

``train``: fits :class:`graph.planning.policy.RankerNet` (an MLP on node features + move
encoding → advantage of the move over stopping, in dB) on all label files, holding out
one in 8 training images (by a hash of the name) for validation; the model, optimizer, epoch and RNG state are
saved to ``DIR/state.pt`` after every epoch and loaded on start (resumable). At the end the
validation figures (regret of the first choice, how often it acts on a false alarm) are
printed and the inference checkpoint (float16 weights, ~150 KB) and its JSON sidecar are
written to ``--out`` (weights in float16).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from restoreagent.checkpoints import REPO


def log(msg: str, path: Path | None = None) -> None:
    line = f"{time.strftime('%H:%M:%S')} {msg}"
    print(line, flush=True)
    if path is not None:
        with open(path, "a") as f:
            f.write(line + "\n")


# -- labels -----------------------------------------------------------------------------
def case_spec(i: int, files: list[Path], seed: int,
              combos: list[tuple[str, tuple[str, ...]]] | None = None) -> dict[str, Any]:
    """Which image, crop, combination and degradation seed case ``i`` uses (deterministic).

    ``combos``: (group, degradations) pairs to cycle through; default the 16 MiO combinations."""
    from restoreagent.tools.research.evaluation.benchmark import COMBOS

    combos = combos or COMBOS
    perm = np.random.default_rng(seed).permutation(len(files))
    group, combo = combos[i % len(combos)]
    return {"index": i, "file": files[int(perm[i % len(files)])], "group": group, "combo": tuple(combo),
            "crop": 256 if i % 4 == 3 else 208, "seed": seed * 1_000_003 + 7919 * i + 17}


def parse_combos(text: str) -> list[tuple[str, tuple[str, ...]]]:
    """``"low_light+noise+jpeg,haze+rain,clean"`` → [(group, combo), …]; the group is the MiO one,
    else "X"; ``clean`` is an undegraded photo (group "clean": every move on it is a false alarm)."""
    from restoreagent.tools.research.evaluation.benchmark import COMBOS
    from restoreagent.tools.util.synthesis import parse_combo

    groups = {frozenset(c): g for g, c in COMBOS}
    out = []
    for item in text.split(","):
        if item.strip().lower() == "clean":
            out.append(("clean", ()))
            continue
        try:
            combo = parse_combo(item)
        except ValueError as exc:
            raise SystemExit(f"error: bad combination {item!r}: {exc}") from None
        out.append((groups.get(frozenset(combo), "X"), combo))
    return out


def make_labels(args: argparse.Namespace) -> int:
    import torch

    from restoreagent.graph.configuration import Configuration
    from restoreagent.graph.toolbox import Toolbox
    from restoreagent.tools import default_registry
    from restoreagent.tools.perception.assess import assess
    from restoreagent.tools.research.datasets import load_rgb, random_crop, split_files
    from restoreagent.tools.research.evaluation.labels import label_case
    from restoreagent.tools.util.files import atomic_write
    from restoreagent.tools.util.synthesis import degrade

    torch.set_num_threads(args.threads)
    work = Path(args.work)
    out = work / "labels"
    out.mkdir(parents=True, exist_ok=True)
    logfile = work / "labels.log"
    files = split_files("train", args.clean_dir)
    toolbox = Toolbox(default_registry, Configuration(weights_dir=args.weights_dir, device="cpu"))
    t0 = time.perf_counter()
    made = 0
    k, n = (int(v) for v in args.shard.split("/"))
    combos = parse_combos(args.combos) if args.combos else None
    for i in range(args.start, args.start + args.count):
        if i % n != k:
            continue
        path = out / f"{i:05d}.json"
        if path.exists():
            continue
        if args.minutes and time.perf_counter() - t0 > 60 * args.minutes:
            log(f"time budget of {args.minutes} min reached; rerun to continue", logfile)
            break
        spec = case_spec(i, files, args.seed, combos)
        if args.crop:
            spec["crop"] = args.crop
        rng = np.random.default_rng(spec["seed"])
        clean = random_crop(load_rgb(spec["file"]), spec["crop"], rng)
        degraded, params = degrade(clean, spec["combo"], seed=spec["seed"])
        try:
            assessor = partial(assess, full_resolution_side=spec["crop"])  # the clean crop is full resolution
            label = label_case(degraded, clean, spec["combo"], toolbox.tools, assessor, seed=spec["seed"])
        except ValueError as exc:  # a task without an available tool: recorded, so a rerun skips it too
            atomic_write(path, json.dumps({"index": i, "combo": list(spec["combo"]), "skipped": str(exc), "nodes": []}))
            log(f"[{i + 1}/{args.start + args.count}] skipped: {exc}", logfile)
            continue
        label.update(index=i, group=spec["group"], source=f"{spec['file'].parent.name}/{spec['file'].name}",
                     crop=spec["crop"], params=params)
        atomic_write(path, json.dumps(label, separators=(",", ":")))
        made += 1
        log(f"[{i + 1}/{args.start + args.count}] {label['source']} {'+'.join(spec['combo'])}: {len(label['nodes'])} nodes, "
            f"{label['tool_runs']} runs, {label['seconds']:.1f} s (elapsed {(time.perf_counter() - t0) / 60:.1f} min)",
            logfile)
    done = len(list(out.glob("*.json")))
    log(f"labels: {made} new, {done} in {out}", logfile)
    return 0


# -- training ---------------------------------------------------------------------------
def _judge():
    from types import SimpleNamespace

    from restoreagent.graph.configuration import Configuration
    from restoreagent.graph.nodes import judge

    tolerance = Configuration().accept_tolerance

    def accepted(node: dict, task: str, after: dict | None) -> bool:
        if after is None:
            return True
        seen = SimpleNamespace(degradations=after["degradations"], quality=after["quality"])
        return judge(task, node["degradations"], seen, node["quality"], tolerance)[0]

    return accepted


def case_targets(label: dict, mode: str = "judge", penalty_db: float = 0.3,
                 false_credit: str = "immediate") -> list[tuple[dict, list[float], list[bool]]]:
    """Per node: (node, advantage over stopping of each move in score-dB, verdict of each move).

    ``oracle``: the label's Q-value (best leaf through the move). ``judge``: the value the agent
    actually gets with the observe node's verdict replayed on the labelled assessments — a move
    it would roll back is worth nothing (−``penalty_db``: one wasted execution), and a node's value
    is the best over the moves it would accept (or stopping).

    ``false_credit``: a false-alarm move is worth its immediate effect (``immediate``, the default:
    the best continuation after it is unknown, and on held-out photos it was often lost — the
    changed image makes the observe node roll back the true moves that follow), or the label's
    optimistic ``q`` = best continuation without it + its effect (``continuation``)."""
    accepted = _judge()
    nodes = {tuple(n["prefix"]): n for n in label["nodes"]}
    verdict: dict[tuple, list[bool]] = {}
    for key, node in nodes.items():
        v = []
        for m in node["moves"]:
            if m["true"]:
                child = nodes.get(key + (m["tool"],))
                v.append(child is not None and accepted(node, m["task"], child))
            else:
                v.append(accepted(node, m["task"], m.get("seen")))
        verdict[key] = v
    value0: dict[tuple, float] = {}
    value: dict[tuple, float] = {}
    for key in sorted(nodes, key=len, reverse=True):
        node = nodes[key]
        best0 = node["stop"]
        for m, ok in zip(node["moves"], verdict[key]):
            if m["true"] and ok and key + (m["tool"],) in value:
                best0 = max(best0, value[key + (m["tool"],)])
        best = best0
        for m, ok in zip(node["moves"], verdict[key]):
            if not m["true"] and ok:
                best = max(best, (best0 if false_credit == "continuation" else node["stop"]) + m["after"] - node["stop"])
        value0[key], value[key] = best0, best
    out = []
    for key, node in nodes.items():
        adv = []
        for m, ok in zip(node["moves"], verdict[key]):
            if mode == "oracle":
                q = m["q"] if m["true"] or false_credit == "continuation" else m["after"]
                adv.append(80.0 * (q - node["stop"]))
            elif not ok:
                adv.append(-penalty_db)
            elif m["true"]:
                adv.append(80.0 * (value.get(key + (m["tool"],), node["stop"]) - node["stop"]))
            elif false_credit == "continuation":
                adv.append(80.0 * (value0[key] + m["after"] - 2 * node["stop"]))
            else:
                adv.append(80.0 * (m["after"] - node["stop"]))
        out.append((node, adv, verdict[key]))
    return out


def load_rows(label_dir: Path, mode: str = "judge", false_credit: str = "immediate") -> dict[str, np.ndarray]:
    """All labelled (node, move) rows: features, target advantage (score-dB), weights, ids."""
    import zlib

    from restoreagent.graph.planning.policy import candidate_floor, encode


    X, y, w, case_id, node_id, is_true, depth, ok, held = [], [], [], [], [], [], [], [], []
    node_counter = 0
    for path in sorted(Path(label_dir).glob("*.json")):
        label = json.loads(path.read_text())
        if not label.get("nodes"):
            continue
        per_depth: dict[int, int] = {}
        for node in label["nodes"]:
            per_depth[node["depth"]] = per_depth.get(node["depth"], 0) + 1
        for node, adv, verdict in case_targets(label, mode, false_credit=false_credit):
            # only the moves the brain is offered: tasks at or above the candidate floor
            keep = [i for i, m in enumerate(node["moves"])
                    if node["degradations"].get(m["task"], 0.0) >= candidate_floor(m["task"])]
            if not keep:
                continue
            weight = 1.0 / per_depth[node["depth"]]
            for i in keep:
                move, a, v = node["moves"][i], adv[i], verdict[i]
                X.append(encode(node, node["done"], node["depth"], move["task"], move["tool"]))
                y.append(a)
                w.append(weight / len(keep) ** 0.5)
                case_id.append(label["index"])
                node_id.append(node_counter)
                is_true.append(move["true"])
                depth.append(node["depth"])
                ok.append(v)
                held.append(zlib.crc32(label.get("source", "").encode()) % 8 == 0)
            node_counter += 1
    return {"X": np.asarray(X, np.float32), "y": np.asarray(y, np.float32), "w": np.asarray(w, np.float32),
            "case": np.asarray(case_id), "node": np.asarray(node_id), "true": np.asarray(is_true),
            "depth": np.asarray(depth), "ok": np.asarray(ok), "held": np.asarray(held, bool)}


def evaluate(model, rows: dict[str, np.ndarray], mask: np.ndarray, margin: float = 0.0) -> dict[str, float]:
    """Decision quality on the rows in ``mask``, node by node: regret (dB) of the model's first
    choice against the best move (or stopping), and how often it picks a false-alarm move."""
    import torch

    with torch.inference_mode():
        pred = model(torch.from_numpy(rows["X"][mask])).numpy()
    y, node, true, depth = rows["y"][mask], rows["node"][mask], rows["true"][mask], rows["depth"][mask]
    regrets, root_regrets, false_picks, stops_wrong = [], [], 0, 0
    for n in np.unique(node):
        idx = np.flatnonzero(node == n)
        best = max(0.0, float(y[idx].max()))  # stopping has advantage 0
        j = idx[np.argmax(pred[idx])]
        got = float(y[j]) if pred[j] > margin else 0.0
        regrets.append(best - got)
        if depth[idx[0]] == 0:
            root_regrets.append(best - got)
        false_picks += int(pred[j] > margin and not true[j])
        stops_wrong += int(pred[j] <= margin and best > 0.5)
    k = max(1, len(np.unique(node)))
    return {"regret_db": float(np.mean(regrets)), "root_regret_db": float(np.mean(root_regrets or [0.0])),
            "false_pick_rate": false_picks / k, "early_stop_rate": stops_wrong / k, "nodes": k}


def rollout(scorer, label_dir: Path, cases: set[int], margins: tuple[float, ...] = (0.0,),
            max_tries: int = 2, max_steps: int = 8) -> dict[str, dict[str, float]]:
    """The agent replayed on each case's labelled tree: at every node the best-predicted candidate
    (task severity ≥ the candidate floor, tool not used yet, at most ``max_tries`` per task) above
    ``margin``, else stop; the observe node's verdict is replayed on the labelled assessments (a
    rolled-back move costs an execution and leaves the node as it was). An accepted false-alarm
    move ends the episode with its immediate score (what comes after it is unknown). ``scorer``: encoded rows → predicted advantages.
    Returns, per margin, the mean gain in score-dB (80 × combined score) against the oracle's
    and the ceiling the observe node allows, and executions per degradation."""
    from restoreagent.graph.planning.policy import candidate_floor, encode

    accepted = _judge()
    labels = []
    for path in sorted(Path(label_dir).glob("*.json")):
        label = json.loads(path.read_text())
        if label.get("index") in cases and label.get("nodes"):
            labels.append(label)
    out = {}
    for margin in margins:
        got, best, execs, ceiling = [], [], [], []
        for label in labels:
            root = next(t for t in case_targets(label) if t[0]["depth"] == 0)
            ceiling.append(80 * (root[0]["stop"] - label["input_score"]) + max([0.0, *root[1]]))
            nodes = {tuple(n["prefix"]): n for n in label["nodes"]}
            node, used, tries, n_exec, value = nodes[()], set(), {}, 0, None
            while value is None:
                cands = [m for m in node["moves"] if m["tool"] not in used and tries.get(m["task"], 0) < max_tries
                         and node["degradations"].get(m["task"], 0.0) >= candidate_floor(m["task"])]
                if not cands or n_exec >= max_steps:
                    value = node["stop"]
                    break
                x = np.stack([encode(node, node["done"], node["depth"], m["task"], m["tool"]) for m in cands])
                pred = scorer(x)
                j = int(np.argmax(pred))
                if pred[j] <= margin:
                    value = node["stop"]
                    break
                move = cands[j]
                n_exec += 1
                used.add(move["tool"])
                tries[move["task"]] = tries.get(move["task"], 0) + 1
                key = tuple(node["prefix"]) + (move["tool"],)
                if move["true"]:
                    child = nodes.get(key)
                    if child is not None and accepted(node, move["task"], child):
                        node = child
                elif accepted(node, move["task"], move.get("seen")):
                    value = move["after"]
            base = label["input_score"]
            got.append(80 * (value - base))
            best.append(80 * (label["best_score"] - base))
            execs.append(n_exec / max(1, len(label["combo"])))
        out[f"{margin:g}"] = {"gain": round(float(np.mean(got)), 3), "oracle_gain": round(float(np.mean(best)), 3),
                              "share": round(float(np.mean(got) / max(1e-9, np.mean(best))), 3),
                              "ceiling_with_observe": round(float(np.mean(ceiling)), 3),
                              "executions_per_d": round(float(np.mean(execs)), 3), "cases": len(labels)}
    return out


def _fit_member(k: int, args, rows, trn, val, work: Path, logfile: Path):
    """Train ensemble member ``k`` (resumable through ``work/state.pt``); returns the model."""
    import torch

    from restoreagent.graph.planning.policy import FEATURES, MEASURE_COLUMNS, RankerNet

    torch.manual_seed(args.seed + 1000 * k)
    model = RankerNet(len(FEATURES), args.hidden)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    state_path = work / "state.pt"
    epoch = 0
    state = torch.load(state_path, map_location="cpu", weights_only=False) if state_path.exists() else {}
    current = state.get("current")
    if current and current.get("member") == k:
        model.load_state_dict(current["model"])
        opt.load_state_dict(current["opt"])
        epoch = current["epoch"]
        torch.set_rng_state(current["rng"])
        log(f"member {k}: resumed at epoch {epoch}", logfile)
    X, y, w = (torch.from_numpy(rows[c][trn]) for c in ("X", "y", "w"))
    w = w / w.mean()
    if epoch == 0:  # input standardisation, stored in the model's buffers
        model.mu.copy_(X.mean(0))
        model.sd.copy_(X.std(0).clamp_min(0.05))
    drop_cols = torch.tensor(MEASURE_COLUMNS)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda e: 0.5 * (1 + np.cos(np.pi * min(1.0, (e + epoch) / args.epochs))) + 0.02)
    while epoch < args.epochs:
        model.train()
        perm = torch.randperm(len(y))
        total = 0.0
        for s in range(0, len(y), args.batch):
            b = perm[s : s + args.batch]
            xb = X[b].clone()
            # measure dropout: a context may carry only severities and quality
            drop = torch.rand(len(b)) < args.measure_dropout
            xb[drop.nonzero().squeeze(1)[:, None], drop_cols[None, :]] = 0.0
            pred = model(xb)
            # Huber on the advantage; errors that flip its sign (act vs stop) cost double.
            loss = torch.nn.functional.huber_loss(pred, y[b], reduction="none", delta=2.0)
            flip = (torch.sign(pred) != torch.sign(y[b])).float()
            loss = (w[b] * loss * (1 + flip)).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(b)
        epoch += 1
        sched.step()
        if epoch % args.log_every == 0 or epoch == args.epochs:
            model.eval()
            msg = f"member {k} epoch {epoch}/{args.epochs} loss {total / len(y):.4f} train {_fmt(evaluate(model, rows, trn))}"
            if val.any():
                msg += f" | val {_fmt(evaluate(model, rows, val))}"
            log(msg, logfile)
        state["current"] = {"member": k, "model": model.state_dict(), "opt": opt.state_dict(), "epoch": epoch,
                            "rng": torch.get_rng_state()}
        _save_state(state, state_path)
    model.eval()
    return model


def _save_state(state: dict, path: Path) -> None:
    import torch

    tmp = path.with_suffix(".part")
    torch.save(state, tmp)
    os.replace(tmp, path)


def train(args: argparse.Namespace) -> int:
    import torch

    from restoreagent.graph.planning.policy import FEATURES, TOOL_NAMES, RankerEnsemble, RankerNet

    torch.set_num_threads(args.threads)
    work = Path(args.work)
    logfile = work / "train.log"
    rows = load_rows(work / "labels", args.targets, args.false_credit)
    n = len(rows["y"])
    if n == 0:
        raise SystemExit(f"no labels in {work / 'labels'}; run the labels step first")
    val = rows["held"] if not args.no_val else np.zeros(n, bool)  # 1 in 8 source images
    trn = ~val
    log(f"{n} rows ({int(trn.sum())} train, {int(val.sum())} validation) from "
        f"{len(np.unique(rows['case']))} cases; {len(FEATURES)} features; {args.ensemble} member(s)", logfile)
    state_path = work / "state.pt"
    setup = {"hidden": args.hidden, "features": len(FEATURES), "epochs": args.epochs, "targets": args.targets,
             "false_credit": args.false_credit,
             "rows": n, "no_val": args.no_val}
    state = torch.load(state_path, map_location="cpu", weights_only=False) if state_path.exists() else {}
    if args.fresh or state.get("setup") != setup:
        if state:
            log("starting afresh (--fresh, or the labels or settings changed)", logfile)
        state = {"setup": setup, "members": []}
        _save_state(state, state_path)
    members = []
    for k in range(args.ensemble):
        if k < len(state["members"]):
            m = RankerNet(len(FEATURES), args.hidden)
            m.load_state_dict(state["members"][k])
            members.append(m.eval())
            continue
        members.append(_fit_member(k, args, rows, trn, val, work, logfile))
        state = torch.load(state_path, map_location="cpu", weights_only=False)
        state["members"].append(members[-1].state_dict())
        state.pop("current", None)
        _save_state(state, state_path)
    model = RankerEnsemble(members).eval()
    figures = {"train": evaluate(model, rows, trn)}
    if val.any():
        figures["validation"] = evaluate(model, rows, val)
        held = set(np.unique(rows["case"][val]).tolist())
        figures["validation_rollout"] = {}
        for risk in (0.0, 0.5, 1.0):
            def scorer(x, risk=risk):
                with torch.inference_mode():
                    p = torch.stack([m(torch.from_numpy(x)) for m in members]).numpy()
                return p.mean(0) - risk * p.std(0) if len(members) > 1 else p[0]
            figures["validation_rollout"][f"risk {risk:g}"] = rollout(scorer, work / "labels", held, (0.0, 0.5, 1.0))
        log(f"validation: {_fmt(figures['validation'])}", logfile)
        for k, v in figures["validation_rollout"].items():
            log(f"validation roll-out, {k}: " + "; ".join(
                f"margin {m}: gain {r['gain']:.2f} of oracle {r['oracle_gain']:.2f} (ceiling {r['ceiling_with_observe']:.2f}), "
                f"{r['executions_per_d']:.2f} executions/d" for m, r in v.items()), logfile)
    out = Path(args.out)
    meta = {"features": list(FEATURES), "tools": list(TOOL_NAMES), "hidden": args.hidden, "epochs": args.epochs,
            "ensemble": args.ensemble, "targets": args.targets, "false_credit": args.false_credit,
            "margin": args.margin, "risk": args.risk,
            "rows": n, "cases": int(len(np.unique(rows["case"]))), "figures": figures,
            "target": "80 × (value(move) − score(stop)): advantage over stopping in PSNR-dB-equivalent score units",
            "command": " ".join(["python -m restoreagent.tools.research.training.policy", *sys.argv[1:]])}
    tmp = out.with_suffix(".part")
    weights = {k: (v.half() if k.endswith("weight") else v.float()).contiguous() for k, v in model.state_dict().items()}
    torch.save({"state_dict": weights, **meta}, tmp)
    os.replace(tmp, out)
    out.with_suffix(".json").write_text(json.dumps(meta, indent=1) + "\n")
    log(f"wrote {out} ({out.stat().st_size / 1024:.0f} KB)", logfile)
    return 0


def _fmt(fig: dict[str, float]) -> str:
    return (f"regret {fig['regret_db']:.3f} dB (root {fig['root_regret_db']:.3f}), false picks "
            f"{100 * fig['false_pick_rate']:.1f} %, early stops {100 * fig['early_stop_rate']:.1f} %")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m restoreagent.tools.research.training.policy", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    lab = sub.add_parser("labels", help="write oracle labels (resumable)")
    lab.add_argument("--work", required=True)
    lab.add_argument("--count", type=int, default=400)
    lab.add_argument("--minutes", type=float, default=0.0, help="stop starting new cases after this (0: no limit)")
    lab.add_argument("--seed", type=int, default=0)
    lab.add_argument("--crop", type=int, default=0, help="crop size of every case (default 208, every 4th 256)")
    lab.add_argument("--clean-dir", type=Path, default=None)
    lab.add_argument("--weights-dir", type=Path, default=os.environ.get("RESTOREAGENT_WEIGHTS_DIR"))
    lab.add_argument("--threads", type=int, default=1)
    lab.add_argument("--start", type=int, default=0, help="first case index (cases START … START+COUNT−1)")
    lab.add_argument("--shard", default="0/1", help="K/N: only cases with index mod N = K (parallel processes)")
    lab.add_argument("--combos", default="",
                     help="comma-separated combinations to cycle through, e.g. low_light+noise+jpeg; clean: undegraded photos (default: the 16 MiO ones)")
    tr = sub.add_parser("train", help="fit the ranker on the labels (resumable)")
    tr.add_argument("--work", required=True)
    tr.add_argument("--out", default=str(REPO / "checkpoints" / "policy.pt"))
    tr.add_argument("--epochs", type=int, default=60)
    tr.add_argument("--hidden", type=int, default=96)
    tr.add_argument("--batch", type=int, default=256)
    tr.add_argument("--lr", type=float, default=2e-3)
    tr.add_argument("--seed", type=int, default=0)
    tr.add_argument("--measure-dropout", type=float, default=0.2)
    tr.add_argument("--targets", choices=("judge", "oracle"), default="judge",
                    help="advantage with the observe node's verdicts replayed (default) or the plain oracle Q")
    tr.add_argument("--margin", type=float, default=0.0, help="stored in the checkpoint: act only above this (dB)")
    tr.add_argument("--false-credit", choices=("immediate", "continuation"), default="immediate",
                    help="value of a false-alarm move: its immediate effect, or + the best continuation")
    tr.add_argument("--risk", type=float, default=0.0,
                    help="stored in the checkpoint: rank by mean − risk × spread of the members' predictions")
    tr.add_argument("--log-every", type=int, default=5)
    tr.add_argument("--threads", type=int, default=1)
    tr.add_argument("--no-val", action="store_true", help="train on every case (no validation hold-out)")
    tr.add_argument("--fresh", action="store_true", help="ignore DIR/state.pt")
    tr.add_argument("--ensemble", type=int, default=3, help="members (seeds) whose predictions are averaged")
    args = p.parse_args(argv)
    return make_labels(args) if args.cmd == "labels" else train(args)


if __name__ == "__main__":
    raise SystemExit(main())
