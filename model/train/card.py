# SPDX-License-Identifier: Apache-2.0
"""card.py — write a trained model atomically, its model card, and the metrics both tools print.

    save_model_atomic(path, state_dict, metadata, extra=None)
    metrics(true, pred, classes, recs=None) -> dict (confusion, per class, balanced accuracy)
    write_card(model_path, card) -> (json_path, md_path)
    render_markdown(card) -> str
    format_confusion(m) -> str (terminal table)

The card is MODEL.card.json (machine-readable, the source of truth) and
MODEL.card.md (its Markdown rendering) beside MODEL.safetensors; both are
written atomically too.  Labels that are not class names (a daemon's
"unknown", "anomaly", or null for a non-finite window) get columns of their
own after the classes, named as they came ("null" for None).
"""
import json
import os
import tempfile

import numpy as np


def _atomic_write(path, write):
    """Call write(f) on a temp file in path's folder, fsync, rename over path,
    fsync the folder.  On any error the temp file is removed and path is
    untouched."""
    d = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=d)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    try:
        dfd = os.open(d, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass


def save_model_atomic(path, state_dict, metadata, extra=None):
    """Write state_dict (floating tensors as F32) plus extra tensors
    ({name: tensor}, e.g. open-set statistics; the daemon refuses names it
    does not know unless it learns them) and string metadata as safetensors
    (model/FORMAT.md), atomically: readers (a SIGHUP reload) see the old
    file or the new one, never half of one."""
    import export
    sd = {k: (v.detach().float() if v.is_floating_point() else v) for k, v in state_dict.items()}
    if extra:
        sd.update(extra)
    with tempfile.TemporaryDirectory() as t:
        p = os.path.join(t, "m.safetensors")
        export.save(sd, p, metadata)
        with open(p, "rb") as f:
            blob = f.read()
    _atomic_write(path, lambda f: f.write(blob))


def label_columns(classes, labels):
    """classes, then every other label seen (sorted; None shown as "null")."""
    extra = sorted({("null" if x is None else str(x)) for x in labels} - set(classes))
    return list(classes) + extra


def metrics(true, pred, classes, per_rec=None):
    """Confusion matrix (rows: classes, columns: label_columns), per-class
    recall/precision/windows, overall and class-balanced accuracy (the mean
    of per-class recalls over classes with windows).  true/pred: sequences
    of labels (pred may hold non-class labels or None).  per_rec: optional
    {recording: (true class, [pred labels])} added as "per_recording"."""
    pred = ["null" if p is None else str(p) for p in pred]
    cols = label_columns(classes, pred)
    m = np.zeros((len(classes), len(cols)), np.int64)
    for t, p in zip(true, pred):
        m[classes.index(t), cols.index(p)] += 1
    per = {}
    recalls = []
    for i, c in enumerate(classes):
        n = int(m[i].sum())
        predicted = int(m[:, i].sum())
        rec = float(m[i, i] / n) if n else None
        per[c] = {"windows": n, "recall": rec,
                  "precision": float(m[i, i] / predicted) if predicted else None}
        if n:
            recalls.append(rec)
    total = int(m.sum())
    out = {"classes": list(classes), "columns": cols, "confusion": m.tolist(),
           "windows": total,
           "accuracy": float(np.trace(m[:, :len(classes)]) / total) if total else None,
           "balanced_accuracy": float(np.mean(recalls)) if recalls else None,
           "per_class": per}
    if per_rec is not None:
        out["per_recording"] = {
            name: {"class": c, "windows": len(ps),
                   "correct": sum(1 for p in ps if p == c),
                   "accuracy": (sum(1 for p in ps if p == c) / len(ps)) if ps else None,
                   "predicted": {k: v for k, v in sorted(
                       _count(["null" if p is None else str(p) for p in ps]).items())}}
            for name, (c, ps) in per_rec.items()}
    return out


def _count(xs):
    d = {}
    for x in xs:
        d[x] = d.get(x, 0) + 1
    return d


def _pct(x):
    return "-" if x is None else f"{100 * x:.2f}%"


def format_confusion(m):
    """The confusion matrix of metrics() as a terminal table."""
    cols = m["columns"]
    w = max([8] + [len(c) + 1 for c in cols + m["classes"]])
    head = "true \\ predicted"
    w0 = max([len(head)] + [len(c) for c in m["classes"]]) + 2
    lines = [head.ljust(w0) + "".join(c.rjust(w) for c in cols) + "  recall"]
    for c, row in zip(m["classes"], m["confusion"]):
        lines.append(c.ljust(w0) + "".join(str(v).rjust(w) for v in row)
                     + "  " + _pct(m["per_class"][c]["recall"]))
    lines.append(f"class-balanced accuracy {_pct(m['balanced_accuracy'])}, "
                 f"accuracy {_pct(m['accuracy'])} ({m['windows']} windows)")
    return "\n".join(lines)


def format_recordings(m):
    """Per-recording lines of metrics()["per_recording"]."""
    out = []
    for name, r in m.get("per_recording", {}).items():
        pred = ", ".join(f"{k} {v}" for k, v in r["predicted"].items())
        out.append(f"  {name:40} {r['class']:10} {r['correct']:5d}/{r['windows']:<5d} "
                   f"{_pct(r['accuracy']):>8}  ({pred})")
    return "\n".join(out)


def render_markdown(card):
    """The model card (a dict, see trident_train.build_card) as Markdown."""
    L = [f"# Model card: `{card['model']}`", "",
         f"Trained by trident-train {card['trainer_version']} (PyTorch {card['torch']}), "
         f"seed {card['seed']}, in {card['seconds']} s.", "",
         "| metadata key | value |", "| --- | --- |",
         f"| `trident.classes` | `{','.join(card['classes'])}` |",
         f"| `trident.sample_rate` | `{card['sample_rate']}` |",
         f"| `trident.normalize` | `{card['normalize']}` |", "",
         f"Model SHA-256: `{card['sha256']}`  ",
         f"Training data fingerprint: `{card['data_fingerprint']}` "
         "(sha256 over sorted relative paths and content hashes)", "",
         "## Data", "",
         "| class | train recordings | validation recordings | train windows |",
         "| --- | --- | --- | --- |"]
    for c in card["classes"]:
        d = card["data"]["per_class"][c]
        L.append(f"| {c} | {d['train_recordings']} | {d['val_recordings']} | {d['train_windows']} |")
    if card["data"].get("background"):
        L.append(f"\nBackground recordings mixed in: {card['data']['background']}")
    L += ["", "## Validation", ""]
    v = card.get("validation")
    if not v:
        L.append("No validation part (--val-fraction 0): the epochs ran to the end, no metrics.")
    else:
        L.append(f"Best epoch {card['training']['best_epoch']} of "
                 f"{card['training']['epochs_run']} run. Class-balanced accuracy "
                 f"**{_pct(v['balanced_accuracy'])}**, accuracy {_pct(v['accuracy'])} over "
                 f"{v['windows']} windows (hop {card['training']['val_hop']}).")
        L += ["", "| true \\ predicted | " + " | ".join(v["columns"]) + " | recall |",
              "| --- |" + " --- |" * (len(v["columns"]) + 1)]
        for c, row in zip(v["classes"], v["confusion"]):
            L.append(f"| {c} | " + " | ".join(str(x) for x in row)
                     + f" | {_pct(v['per_class'][c]['recall'])} |")
        L += ["", "| recording | class | correct | windows | accuracy |",
              "| --- | --- | --- | --- | --- |"]
        for name, r in v["per_recording"].items():
            L.append(f"| `{name}` | {r['class']} | {r['correct']} | {r['windows']} | "
                     f"{_pct(r['accuracy'])} |")
    L += ["", "## Options", "", "```", json.dumps(card["options"], indent=1, sort_keys=True), "```", ""]
    return "\n".join(L)


def write_card(model_path, card):
    """MODEL.card.json and MODEL.card.md beside model_path (MODEL without
    its .safetensors suffix), atomically; returns both paths."""
    base = model_path[:-len(".safetensors")] if model_path.endswith(".safetensors") else model_path
    jp, mp = base + ".card.json", base + ".card.md"
    _atomic_write(jp, lambda f: f.write((json.dumps(card, indent=1) + "\n").encode()))
    _atomic_write(mp, lambda f: f.write(render_markdown(card).encode()))
    return jp, mp
