# SPDX-License-Identifier: Apache-2.0
"""demo_view.py — what `make demo` shows: trident-sub's JSON lines, live, then a summary.

    trident-sub ENDPOINT | /usr/bin/python3 -u tests/demo_view.py

Standard library only.  Prints one compact line per classification as it
arrives; at end of input, a per-stream table of windows per predicted label
against the recording's true class (the class name in the stream name, e.g.
stream "ball" is a ball fault) and the fraction correct.  Exits 1 when no
classification arrived.
"""
import json
import sys

CLASSES = ["normal", "inner", "ball", "outer"]


def true_class(stream):
    base = stream.rsplit("/", 1)[-1].lower()
    for c in CLASSES:
        if c in base:
            return c
    return "?"


def parse(line):
    """The JSON object of a line (tolerates a topic printed before it)."""
    i = line.find("{")
    if i < 0:
        return None
    try:
        m = json.loads(line[i:])
    except ValueError:
        return None
    return m if isinstance(m, dict) and "label" in m and "stream" in m else None


def main():
    counts, order, labels = {}, [], list(CLASSES)
    print(f"{'stream':12} {'seq':>4} {'sample':>7}  {'label':8} {'score':>6}  true")
    for line in sys.stdin:
        m = parse(line)
        if m is None:
            continue
        s, lab = str(m["stream"]), str(m["label"])
        if s not in counts:
            counts[s] = {}
            order.append(s)
        if lab not in labels:
            labels.append(lab)
        counts[s][lab] = counts[s].get(lab, 0) + 1
        t = true_class(s)
        mark = "" if lab == t else "  <- wrong"
        print(f"{s:12} {m.get('seq', -1):4d} {m.get('sample', -1):7d}  {lab:8} "
              f"{float(m.get('score', 0)):6.3f}  {t}{mark}", flush=True)
    if not order:
        print("demo: no classification received", file=sys.stderr)
        return 1
    print()
    print("summary: windows per predicted label against the recording's true class")
    head = f"{'stream':12} {'true':8} " + " ".join(f"{c:>7}" for c in labels) + \
        f" {'windows':>8} {'correct':>8}"
    print(head)
    tot = right = 0
    for s in order:
        c = counts[s]
        n = sum(c.values())
        t = true_class(s)
        k = c.get(t, 0)
        tot += n
        right += k
        print(f"{s:12} {t:8} " + " ".join(f"{c.get(l, 0):7d}" for l in labels) +
              f" {n:8d} {100.0 * k / n:7.1f}%")
    print(f"{'all':12} {'':8} " + " ".join(" " * 7 for _ in labels) +
          f" {tot:8d} {100.0 * right / tot:7.1f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
