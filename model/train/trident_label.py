#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""trident-label — look at the windows tridentd kept, and file them into class folders.

tridentd's keep = { path = DIR; } writes a clip STREAM-SEQ-LABEL.wav (the
window's 1024 samples at the model's rate, as classified) and a sidecar
STREAM-SEQ-LABEL.json (stream, seq, sample, time, label, state, score,
probabilities, model, and why it was kept) for every window the model was
unsure of, called unknown or anomaly, or that changed the state.

  trident-label DIR                      list the clips, oldest first
  trident-label DIR --label unknown      ... only those the daemon labelled so
  trident-label DIR [CLIP...] [filters] --to DATA/CLASS
                                         move them (wav and json) into DATA/CLASS
                                         (--link: symlink, --copy: copy)

DATA is then a folder trident-train(1) takes as it is: one subfolder per
class.  Exit codes: 0, 64 usage, 66 DIR or a CLIP not found, 73 a target
that exists already (nothing is overwritten).
"""
import argparse
import json
import os
import shutil
import sys

EX_USAGE, EX_NOINPUT, EX_CANTCREAT = 64, 66, 73
PROG = "trident-label"


def die(code, msg):
    print(f"{PROG}: {msg}", file=sys.stderr)
    sys.exit(code)


def clips(folder):
    """[(stem, sidecar dict)] of every clip in folder with both files, by time, then seq."""
    out = []
    for name in os.listdir(folder):
        if not name.endswith(".json") or name.endswith(".tmp"):
            continue
        stem = name[:-5]
        if not os.path.isfile(os.path.join(folder, stem + ".wav")):
            continue
        try:
            with open(os.path.join(folder, name)) as f:
                meta = json.load(f)
        except (OSError, ValueError) as e:
            print(f"{PROG}: {os.path.join(folder, name)}: skipped: {e}", file=sys.stderr)
            continue
        if not isinstance(meta, dict) or "seq" not in meta:
            continue       # a recording's sidecar, not a clip's
        out.append((stem, meta))
    out.sort(key=lambda c: (c[1].get("t") or 0, c[1].get("stream") or "", c[1].get("seq") or 0))
    return out


def wanted(meta, a):
    if a.label is not None and (meta.get("label") or "") != a.label:
        return False
    if a.kept is not None and meta.get("kept") != a.kept:
        return False
    if a.stream is not None and meta.get("stream") != a.stream:
        return False
    if a.below is not None:
        s = meta.get("score")
        if s is None or s >= a.below:
            return False
    return True


def fmt(x, spec):
    return "-" if x is None else format(x, spec)


def main(argv=None):
    ap = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="\n\n".join(__doc__.split("\n\n")[1:]))
    ap.add_argument("dir", metavar="DIR", help="tridentd's keep.path")
    ap.add_argument("clip", metavar="CLIP", nargs="*",
                    help="only these clips (file names, with or without .wav/.json)")
    ap.add_argument("--label", help="only clips the daemon labelled so (unknown, anomaly, a class)")
    ap.add_argument("--kept", choices=["unsure", "unknown", "anomaly", "event"],
                    help="only clips kept for this reason")
    ap.add_argument("--stream", help="only this stream's clips")
    ap.add_argument("--below", type=float, metavar="P", help="only clips whose top probability is below P")
    ap.add_argument("--to", metavar="DATA/CLASS", help="file the selected clips into this class folder")
    how = ap.add_mutually_exclusive_group()
    how.add_argument("--link", action="store_true", help="--to: symlink instead of moving")
    how.add_argument("--copy", action="store_true", help="--to: copy instead of moving")
    a = ap.parse_args(argv)

    if not os.path.isdir(a.dir):
        die(EX_NOINPUT, f"{a.dir}: no such directory")
    if (a.link or a.copy) and not a.to:
        die(EX_USAGE, "--link and --copy need --to")
    every = clips(a.dir)
    by_stem = {s: m for s, m in every}
    if a.clip:
        chosen = []
        for c in a.clip:
            stem = os.path.basename(c)
            for ext in (".wav", ".json"):
                if stem.endswith(ext):
                    stem = stem[:-len(ext)]
            if stem not in by_stem:
                die(EX_NOINPUT, f"{os.path.join(a.dir, stem)}.wav: no such clip (with its .json)")
            chosen.append((stem, by_stem[stem]))
    else:
        chosen = every
    chosen = [(s, m) for s, m in chosen if wanted(m, a)]

    if not a.to:
        print(f"{'clip':40s} {'time':27s} {'label':10s} {'kept':8s} {'score':>6s} {'state':10s}")
        for stem, m in chosen:
            print(f"{stem + '.wav':40s} {m.get('time') or '-':27s} {m.get('label') or '-':10s} "
                  f"{m.get('kept') or '-':8s} {fmt(m.get('score'), '6.3f'):>6s} {m.get('state') or '-':10s}")
        print(f"{len(chosen)} clips", file=sys.stderr)
        return 0

    cls = os.path.basename(os.path.normpath(a.to))
    if not cls or cls in (".", ".."):
        die(EX_USAGE, f"--to {a.to}: name the class folder (DATA/CLASS)")
    try:
        os.makedirs(a.to, exist_ok=True)
    except OSError as e:
        die(EX_CANTCREAT, f"{a.to}: {e.strerror}")
    for stem, _ in chosen:
        for ext in (".wav", ".json"):
            if os.path.lexists(os.path.join(a.to, stem + ext)):
                die(EX_CANTCREAT, f"{os.path.join(a.to, stem + ext)}: exists already (nothing moved)")
    verb = "linked" if a.link else "copied" if a.copy else "moved"
    for stem, _ in chosen:
        for ext in (".wav", ".json"):
            src, dst = os.path.join(a.dir, stem + ext), os.path.join(a.to, stem + ext)
            try:
                if a.link:
                    os.symlink(os.path.abspath(src), dst)
                elif a.copy:
                    shutil.copy2(src, dst)
                else:
                    shutil.move(src, dst)
            except OSError as e:
                die(EX_CANTCREAT, f"{dst}: {e.strerror}")
    print(f"{len(chosen)} clips {verb} to {a.to}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
