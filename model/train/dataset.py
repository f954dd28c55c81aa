# SPDX-License-Identifier: Apache-2.0
"""dataset.py — labelled recordings for trident-train and trident-eval.

Everything here is importable and free of side effects (no torch import at
module level), so later tools (anomaly models, open-set tensors) reuse it:

    find_prep(explicit=None) -> path of trident-prep
    discover(data, classes=None) -> (classes, [Recording])   # folder or CSV
    load_samples(recs, prep, rate, channel=0, check=True)     # fills .samples
    split_recordings(recs, classes, val_fraction, seed) -> (train, val)
    windows(x, hop, offset=0) -> [n, WINDOW] float32
    fingerprint(recs) -> sha256 hex over sorted (path, sha256(content))

Errors are DataError(code, message): one line naming the file, code one of
EX_USAGE 64, EX_DATAERR 65, EX_NOINPUT 66 (sysexits.h); tools print
"PROG: message" and exit with code.

A DATA folder holds one subfolder per class; recordings (.wav, .flac, any
case) are found recursively inside each class folder.  A folder named
`background` is not a class: its recordings are returned apart (kind
"background") for mixing.  A CSV manifest has a header with at least `path`
and `class` (optionally `group`); paths are relative to the CSV's folder.
"""
import csv
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np

WINDOW = 1024
AUDIO_EXT = (".wav", ".flac")
BACKGROUND = "background"
EX_USAGE, EX_DATAERR, EX_NOINPUT, EX_SOFTWARE, EX_CANTCREAT = 64, 65, 66, 70, 73

HERE = os.path.dirname(os.path.abspath(__file__))


def argument_parser(**kw):
    """argparse.ArgumentParser whose usage errors exit 64 (EX_USAGE), not 2."""
    import argparse

    class P(argparse.ArgumentParser):
        def error(self, message):
            self.print_usage(__import__("sys").stderr)
            self.exit(EX_USAGE, f"{self.prog}: error: {message}\n")
    return P(**kw)


class DataError(Exception):
    """A refusal: .code (sysexits) and a one-line message naming the file."""

    def __init__(self, code, message):
        super().__init__(message)
        self.code = code


class Recording:
    """One labelled recording.

    path: as given (absolute or relative to the cwd); rel: the path shown in
    reports (relative to DATA); cls: class name (or "background"); group: the
    split group (default: the recording itself); samples: float32 at the
    model's rate, filled by load_samples(); sha256: of the file's bytes."""

    def __init__(self, path, cls, group=None, rel=None):
        self.path, self.cls = path, cls
        self.rel = rel or path
        self.group = group if group not in (None, "") else self.rel
        self.samples = None
        self.sha256 = None

    def __repr__(self):
        return f"Recording({self.rel!r}, {self.cls!r}, group={self.group!r})"


def need_torch(prog):
    """Exit 69 with one line if python3-torch is missing (the .deb only
    recommends it: the daemon does not need it)."""
    try:
        import torch  # noqa: F401
    except ImportError:
        print(f"{prog}: needs PyTorch: apt-get install python3-torch", file=sys.stderr)
        sys.exit(69)


def find_prep(explicit=None):
    """trident-prep: explicit, $TRIDENT_PREP, the build beside this source
    tree, the installed one beside this module (/usr/lib/trident), or PATH."""
    cands = [explicit, os.environ.get("TRIDENT_PREP"),
             os.path.join(HERE, "..", "..", os.environ.get("TRIDENT_BUILD", "build"),
                          "bin", "trident-prep"),
             os.path.join(HERE, "trident-prep"), os.path.join(HERE, "..", "trident-prep"),
             shutil.which("trident-prep")]
    for c in cands:
        if c and os.path.isfile(c) and os.access(c, os.X_OK):
            return os.path.abspath(c)
    if explicit:
        raise DataError(EX_NOINPUT, f"{explicit}: trident-prep not found or not executable")
    raise DataError(EX_NOINPUT, "trident-prep not found (run make, or pass --prep PATH)")


def _audio_files(folder):
    out = []
    for d, subs, files in os.walk(folder):
        subs.sort()
        for f in sorted(files):
            if f.lower().endswith(AUDIO_EXT):
                out.append(os.path.join(d, f))
    return out


def discover(data, classes=None):
    """(classes, recordings) of DATA, a class-folder tree or a CSV manifest.

    classes: an ordered list restricting and ordering the classes (None:
    every class, sorted by name).  Background recordings (folder or class
    `background`) come last in the list with cls "background".  Raises
    DataError for a missing DATA (66), a class named in `classes` that has
    no folder/rows (65), an empty class folder (65) and fewer than two
    classes (65)."""
    if not os.path.exists(data):
        raise DataError(EX_NOINPUT, f"{data}: no such file or folder")
    recs = []
    if os.path.isdir(data):
        names = sorted(e for e in os.listdir(data) if os.path.isdir(os.path.join(data, e))
                       and not e.startswith("."))
        found = {}
        for n in names:
            files = _audio_files(os.path.join(data, n))
            found[n] = files
            if not files and (classes is None or n in classes) and n != BACKGROUND:
                raise DataError(EX_DATAERR, f"{os.path.join(data, n)}: class folder holds "
                                "no .wav or .flac recording")
        for n, files in found.items():
            for f in files:
                recs.append(Recording(f, n, rel=os.path.relpath(f, data)))
        avail = [n for n in names if n != BACKGROUND]
    else:
        base = os.path.dirname(os.path.abspath(data))
        try:
            with open(data, newline="") as f:
                rows = list(csv.DictReader(f))
                fields = rows[0].keys() if rows else []
        except (OSError, UnicodeDecodeError, csv.Error) as e:
            raise DataError(EX_NOINPUT if isinstance(e, OSError) else EX_DATAERR,
                            f"{data}: {getattr(e, 'strerror', None) or e}")
        if "path" not in fields or "class" not in fields:
            raise DataError(EX_DATAERR, f"{data}: a manifest needs a header with path,class[,group]")
        avail = []
        for i, r in enumerate(rows, 2):
            p, c = (r.get("path") or "").strip(), (r.get("class") or "").strip()
            if not p or not c:
                raise DataError(EX_DATAERR, f"{data}: line {i}: empty path or class")
            full = p if os.path.isabs(p) else os.path.join(base, p)
            recs.append(Recording(full, c, r.get("group"), rel=p))
            if c != BACKGROUND and c not in avail:
                avail.append(c)
        avail.sort()
    if classes:
        missing = [c for c in classes if c not in avail]
        if missing:
            raise DataError(EX_DATAERR, f"{data}: no recordings of class {missing[0]!r} "
                            f"(classes found: {','.join(avail) or 'none'})")
        order = list(classes)
    else:
        order = avail
    if len(order) < 2:
        raise DataError(EX_DATAERR, f"{data}: {len(order)} class ({','.join(order) or 'none'}); "
                        "a classifier needs at least two class folders")
    keep = [r for r in recs if r.cls in order]
    keep.sort(key=lambda r: (order.index(r.cls), r.rel))
    keep += sorted((r for r in recs if r.cls == BACKGROUND), key=lambda r: r.rel)
    return order, keep


def _sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for b in iter(lambda: f.read(1 << 20), b""):
            h.update(b)
    return h.hexdigest()


def prep_one(prep, path, rate, channel=0, tmpdir=None):
    """The recording as the daemon classifies it: float32 samples of channel
    `channel` resampled to `rate` by trident-prep.  DataError on failure,
    with trident-prep's own one line (it names the file)."""
    own = tmpdir is None
    tmpdir = tmpdir or tempfile.mkdtemp(prefix="trident-prep-")
    out = os.path.join(tmpdir, "prep.f32")
    try:
        r = subprocess.run([prep, "--rate", str(int(rate)), "--channel", str(int(channel)),
                            path, out], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        if r.returncode != 0:
            msg = (r.stderr.strip().splitlines() or [f"exit {r.returncode}"])[-1]
            msg = msg.replace("trident-prep: ", "", 1)
            code = r.returncode if r.returncode in (EX_USAGE, EX_DATAERR, EX_NOINPUT) else EX_DATAERR
            raise DataError(code, msg if path in msg else f"{path}: {msg}")
        return np.fromfile(out, dtype="<f4").astype(np.float32)
    finally:
        if os.path.exists(out):
            os.unlink(out)
        if own:
            shutil.rmtree(tmpdir, True)


def load_samples(recs, prep, rate, channel=0, check=True, min_samples=WINDOW):
    """Fill each Recording's .samples (trident-prep at `rate`, `channel`) and
    .sha256.  With check: refuse (DataError 65) a recording shorter than
    min_samples after resampling or with a non-finite sample (NaN, Inf),
    naming the file and the first bad sample.  Recordings already loaded
    (model/train/train.py loads the CWRU set once) are kept."""
    with tempfile.TemporaryDirectory(prefix="trident-prep-") as tmp:
        for r in recs:
            if r.samples is not None:
                continue
            if not os.path.isfile(r.path):
                raise DataError(EX_NOINPUT, f"{r.path}: no such file")
            if not os.access(r.path, os.R_OK):
                raise DataError(EX_NOINPUT, f"{r.path}: permission denied")
            r.sha256 = _sha256_file(r.path)
            x = prep_one(prep, r.path, rate, channel, tmp)
            if check:
                bad = np.flatnonzero(~np.isfinite(x))
                if len(bad):
                    raise DataError(EX_DATAERR, f"{r.path}: non-finite sample ({x[bad[0]]}) at "
                                    f"sample {bad[0]} (at {rate} Hz)")
                if len(x) < min_samples:
                    raise DataError(EX_DATAERR, f"{r.path}: {len(x)} samples at {rate} Hz, "
                                    f"shorter than one {min_samples}-sample window")
            r.samples = x
    return recs


def split_recordings(recs, classes, val_fraction, seed):
    """(train, val) lists of Recordings, split by recording, never by window.

    With groups (a manifest's group column; every recording is its own group
    otherwise) whole groups go to one side.  Per class, round(val_fraction *
    groups) groups (at least 1 when val_fraction > 0, at most all but one)
    are drawn with numpy's default_rng(seed), classes in order; a group
    holding several classes (e.g. one speed) counts for each of them, and
    groups already drawn for an earlier class count towards a later class's
    share.  val_fraction 0: no
    validation part.  DataError 65 if some class has fewer than two groups
    while val_fraction > 0.  Background recordings always train."""
    bg = [r for r in recs if r.cls == BACKGROUND]
    recs = [r for r in recs if r.cls != BACKGROUND]
    if val_fraction <= 0:
        return recs + bg, []
    rng = np.random.default_rng(seed)
    val_groups = set()
    for c in classes:
        groups = sorted({r.group for r in recs if r.cls == c})
        if len(groups) < 2:
            n = len([r for r in recs if r.cls == c])
            raise DataError(EX_DATAERR, f"class {c!r}: {n} recording(s) in {len(groups)} group(s), "
                            "too few to split by recording; add recordings, use a manifest's "
                            "group column, or pass --val-fraction 0")
        k = min(max(1, int(round(val_fraction * len(groups)))), len(groups) - 1)
        free = [g for g in groups if g not in val_groups]
        need = k - (len(groups) - len(free))
        for i in rng.permutation(len(free))[:max(0, need)]:
            val_groups.add(free[i])
    train = [r for r in recs if r.group not in val_groups]
    val = [r for r in recs if r.group in val_groups]
    for c in classes:
        if not any(r.cls == c for r in train):
            raise DataError(EX_DATAERR, f"class {c!r}: every recording shares a group with the "
                            "validation part; regroup or pass --val-fraction 0")
    return train + bg, val


def windows(x, hop, offset=0):
    """Windows of WINDOW samples of x every hop samples from offset (the
    daemon's cut with --hop hop); a shorter tail is dropped."""
    x = np.asarray(x, np.float32)[offset:]
    if len(x) < WINDOW:
        return np.zeros((0, WINDOW), np.float32)
    n = (len(x) - WINDOW) // hop + 1
    return x[np.arange(n)[:, None] * hop + np.arange(WINDOW)[None, :]]


def fingerprint(recs):
    """sha256 hex over the sorted (relative path, content sha256) lines of
    the recordings: the training data's identity in the model card."""
    h = hashlib.sha256()
    for rel, d in sorted((r.rel, r.sha256 or _sha256_file(r.path)) for r in recs):
        h.update(f"{rel}\0{d}\n".encode())
    return h.hexdigest()


def features(net, wins, norm="zscore", batch=256):
    """Net.features() of windows [n, WINDOW] normalised with `norm` (the
    768 activations the fc layer reads, as the daemon's net_features())."""
    import torch
    from net import normalize
    out = []
    with torch.no_grad():
        for i in range(0, len(wins), batch):
            xb = torch.from_numpy(normalize(wins[i:i + batch], norm)).unsqueeze(1)
            out.append(net.features(xb).numpy())
    return np.concatenate(out) if out else np.zeros((0, 768), np.float32)


def logits(net, wins, norm="zscore", batch=256):
    """Net logits [n, C] of windows [n, WINDOW] normalised with `norm`."""
    import torch
    from net import normalize
    out = []
    with torch.no_grad():
        for i in range(0, len(wins), batch):
            xb = torch.from_numpy(normalize(wins[i:i + batch], norm)).unsqueeze(1)
            out.append(net(xb).numpy())
    return np.concatenate(out) if out else np.zeros((0, net.fc.out_features), np.float32)
