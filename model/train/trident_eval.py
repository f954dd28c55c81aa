# SPDX-License-Identifier: Apache-2.0
"""trident-eval — replay labelled recordings through the real daemon and score its labels.

    trident-eval [options] MODEL DATA

DATA is laid out as for trident-train (class folders, or a CSV manifest
path,class[,group]); every recording of a class the model knows (and of any
other folder/class given with --classes) is replayed by `tridentd --replay
... --model MODEL --stdout --pace fast --hop HOP`: the daemon reads,
resamples and classifies them exactly as in service.  Prints the confusion
matrix (labels that are not the model's classes — "unknown", "anomaly", null
— get their own columns), per-recording accuracy and the class-balanced
accuracy; --json prints the same as one JSON object.  Exit: 0, 64 usage,
65 bad data or model, 66 missing input, 70 the daemon failed.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import dataset as ds  # noqa: E402
import card  # noqa: E402
from dataset import DataError  # noqa: E402

PROG = "trident-eval"


def find_tridentd(explicit=None):
    """tridentd: explicit, $TRIDENTD, the build beside this source tree, or
    /usr/sbin, /usr/local/sbin, PATH."""
    cands = [explicit, os.environ.get("TRIDENTD"),
             os.path.join(HERE, "..", "..", os.environ.get("TRIDENT_BUILD", "build"), "bin", "tridentd"),
             shutil.which("tridentd"), "/usr/sbin/tridentd", "/usr/local/sbin/tridentd"]
    for c in cands:
        if c and os.path.isfile(c) and os.access(c, os.X_OK):
            return os.path.abspath(c)
    raise DataError(ds.EX_NOINPUT, f"{explicit or 'tridentd'}: daemon not found (run make, or --tridentd)")


def model_classes(path):
    """(classes, metadata) of a model file, or DataError."""
    import export
    if not os.path.isfile(path):
        raise DataError(ds.EX_NOINPUT, f"{path}: no such model file")
    try:
        sd, meta = export.load(path)
    except Exception as e:  # noqa: BLE001
        raise DataError(ds.EX_DATAERR, f"{path}: not a readable safetensors model ({e})")
    n = sd["fc.weight"].shape[0] if "fc.weight" in sd else 0
    classes = meta.get("trident.classes", ",".join(str(i) for i in range(n))).split(",")
    return classes, meta


def replay(tridentd, model, recs, hop, channel, workers=0):
    """{recording.rel: [label, ...]} in window order, from one replay of every
    recording through the daemon.  Recordings are linked under unique names
    so that streams never collide; multi-channel files give NAME/CHANNEL
    streams, of which `channel` is kept."""
    with tempfile.TemporaryDirectory(prefix="trident-eval-") as tmp:
        names, files = {}, []
        for i, r in enumerate(recs):
            ext = os.path.splitext(r.path)[1].lower()
            link = os.path.join(tmp, f"r{i:05d}{ext}")
            os.symlink(os.path.abspath(r.path), link)
            names[f"r{i:05d}"] = r.rel
            files.append(link)
        cmd = [tridentd, "--replay", *files, "--model", os.path.abspath(model), "--stdout",
               "--pace", "fast", "--hop", str(hop), "--stats-interval", "0",
               "--endpoint", f"ipc://{tmp}/pub"]
        if workers:
            cmd += ["--workers", str(workers)]
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        if p.returncode != 0:
            msg = [ln for ln in p.stderr.splitlines() if "error" in ln] or p.stderr.splitlines() or ["?"]
            m = msg[-1]
            for k, v in names.items():
                m = m.replace(os.path.join(tmp, k), v)
            code = p.returncode if p.returncode in (ds.EX_DATAERR, ds.EX_NOINPUT) else ds.EX_SOFTWARE
            raise DataError(code, f"tridentd exited {p.returncode}: {m}")
    got = {}
    for ln in p.stdout.splitlines():
        try:
            m = json.loads(ln)
        except ValueError:
            continue
        if "label" not in m or "stream" not in m:     # _stats, _events
            continue
        s = m["stream"]
        base, _, ch = s.partition("/")
        if ch and ch != str(channel):
            continue
        if not ch and channel != 0:
            continue
        if base in names:
            got.setdefault(names[base], {})[m["seq"]] = m.get("label")
    return {rel: [got.get(rel, {})[k] for k in sorted(got.get(rel, {}))] for rel in names.values()}


def evaluate(model, data, hop=1024, channel=0, classes=None, tridentd=None, workers=0):
    """metrics() (card.metrics, with per_recording) of the daemon's labels on
    DATA.  Recordings of classes outside the model's are refused unless
    named in `classes`, in which case their rows count every label they get."""
    mcls, meta = model_classes(model)
    want = classes or None
    if want is None:
        found, _ = _discover_any(data)
        want = [c for c in mcls if c in found]
        if not want:
            raise DataError(ds.EX_DATAERR, f"{data}: none of its classes ({','.join(found)}) "
                            f"is a class of {model} ({','.join(mcls)})")
    order, recs = _discover_any(data, want)
    recs = [r for r in recs if r.cls != ds.BACKGROUND]
    for r in recs:
        if not os.path.isfile(r.path):
            raise DataError(ds.EX_NOINPUT, f"{r.path}: no such file")
    labels = replay(find_tridentd(tridentd), model, recs, hop, channel, workers)
    rows = list(mcls) + [c for c in order if c not in mcls]
    true, pred, per = [], [], {}
    for r in recs:
        ps = labels[r.rel]
        per[r.rel] = (r.cls, ps)
        true += [r.cls] * len(ps)
        pred += ps
    m = card.metrics(true, pred, rows, per)
    m["model"] = model
    m["model_classes"] = mcls
    m["sample_rate"] = meta.get("trident.sample_rate")
    m["hop"] = hop
    return m


def _discover_any(data, classes=None):
    """dataset.discover without its two-class minimum (one class is fine to evaluate)."""
    try:
        return ds.discover(data, classes)
    except DataError as e:
        if "at least two class" not in str(e):
            raise
    # a single class: discover with a dummy second name is not possible; redo by hand
    if os.path.isdir(data):
        names = sorted(e for e in os.listdir(data) if os.path.isdir(os.path.join(data, e))
                       and e != ds.BACKGROUND and not e.startswith("."))
        names = [n for n in names if classes is None or n in classes]
        recs = [ds.Recording(f, n, rel=os.path.relpath(f, data))
                for n in names for f in ds._audio_files(os.path.join(data, n))]
        return names, recs
    raise DataError(ds.EX_DATAERR, f"{data}: no class to evaluate")


def main(argv=None):
    ds.need_torch(PROG)
    ap = ds.argument_parser(prog=PROG, description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", metavar="MODEL")
    ap.add_argument("data", metavar="DATA")
    ap.add_argument("--hop", type=int, default=1024, help="samples between windows (default 1024)")
    ap.add_argument("--channel", type=int, default=0, help="channel of multi-channel files (default 0)")
    ap.add_argument("--classes", help="classes (folders) of DATA to replay (default: those the model knows)")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument("--tridentd", help="the daemon (default: found beside the tool)")
    ap.add_argument("--workers", type=int, default=0)
    a = ap.parse_args(sys.argv[1:] if argv is None else argv)
    if a.hop < 1 or a.channel < 0:
        ap.error("--hop must be positive and --channel non-negative")
    try:
        m = evaluate(a.model, a.data, a.hop, a.channel,
                     a.classes.split(",") if a.classes else None, a.tridentd, a.workers)
    except DataError as e:
        print(f"{PROG}: {e}", file=sys.stderr)
        return e.code
    if a.json:
        print(json.dumps(m, indent=1))
    else:
        print(f"{a.model} on {a.data} (hop {a.hop}, channel {a.channel}); rows: true class, "
              "columns: the daemon's label")
        print(card.format_confusion(m))
        print("per recording:")
        print(card.format_recordings(m))
    return 0


if __name__ == "__main__":
    sys.exit(main())
