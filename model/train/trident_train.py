# SPDX-License-Identifier: Apache-2.0
"""trident-train — train trident's Net on your own labelled recordings.

    trident-train [options] DATA -o MODEL.safetensors

DATA is a folder with one subfolder per class holding WAV/FLAC recordings
(searched recursively; a `background` folder is mixed into the others, not a
class), or a CSV manifest path,class[,group] (paths relative to the CSV).
Every recording is read and resampled to --rate by trident-prep, the daemon's
own reader and resampler, so the network trains on what the daemon sees.
Windows are z-scored per window (dsp/normalize.c).  The split is by
recording (or by group), stratified per class and seeded; early stopping
keeps the weights of the best validation epoch (class-balanced accuracy).
Writes MODEL.safetensors atomically and its card MODEL.card.json +
MODEL.card.md.  Exit: 0, 64 usage, 65 bad data, 66 missing input, 73 cannot
write, 70 internal.
"""
import argparse
import copy
import hashlib
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import numpy as np  # noqa: E402

import dataset as ds  # noqa: E402
from dataset import DataError, WINDOW  # noqa: E402

PROG = "trident-train"
VERSION_FILE = os.path.join(HERE, "..", "..", "VERSION")


def trainer_version():
    for p in (VERSION_FILE, os.path.join(HERE, "VERSION")):
        try:
            with open(p) as f:
                return f.read().strip()
        except OSError:
            pass
    return "unknown"


def parse_args(argv):
    ap = ds.argument_parser(prog=PROG, description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data", metavar="DATA", help="class folders, or a CSV manifest path,class[,group]")
    ap.add_argument("-o", "--output", required=True, metavar="MODEL.safetensors")
    ap.add_argument("--classes", help="comma-separated class order (and subset); default: sorted names")
    ap.add_argument("--rate", type=int, default=12000,
                    help="the model's sample rate in Hz (default 12000, the shipped model's)")
    ap.add_argument("--channel", type=int, default=0, help="channel of multi-channel files (default 0)")
    ap.add_argument("--val-fraction", type=float, default=0.25,
                    help="share of each class's recordings (groups) for validation (default 0.25; 0: none)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--epochs", type=int, default=20, help="at most this many epochs (default 20)")
    ap.add_argument("--patience", type=int, default=4,
                    help="stop after this many epochs without a better validation (default 4)")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--windows-per-epoch", type=int, default=0,
                    help="training windows drawn per epoch (default: the training recordings' "
                         "length in windows, at most 4000)")
    ap.add_argument("--val-hop", type=int, default=1024, help="hop of validation windows (default 1024)")
    ap.add_argument("--speed", type=float, default=0.05, help="speed change, +- fraction (default 0.05)")
    ap.add_argument("--gain-db", type=float, default=6.0, help="random gain, +- dB (default 6)")
    ap.add_argument("--snr", default="10,40", help="additive noise SNR range in dB (default 10,40)")
    ap.add_argument("--noise-prob", type=float, default=0.5)
    ap.add_argument("--background-snr", default="0,20", help="background mixing SNR range, dB")
    ap.add_argument("--color", type=float, default=0.8,
                    help="share of training windows given a random transfer function, "
                         "as another mounting or sensor would (default 0.8; 0: none)")
    ap.add_argument("--color-db", type=float, default=10.0,
                    help="spread of that transfer function, dB (std at 9 log-spaced knots, "
                         "default 10)")
    ap.add_argument("--tilt-db", type=float, default=3.0,
                    help="its random spectral tilt, +- dB per octave (default 3)")
    ap.add_argument("--threads", type=int, default=1, help="PyTorch threads (default 1)")
    ap.add_argument("--prep", help="trident-prep program (default: found beside the tool)")
    ap.add_argument("--force", action="store_true",
                    help="replace an existing MODEL even if its classes differ")
    ap.add_argument("--quiet", action="store_true", help="no per-epoch progress")
    ap.add_argument("--no-openset", action="store_true",
                    help="no open-set detector (windows unlike every class are not called unknown)")
    ap.add_argument("--normal-only", action="store_true",
                    help="DATA is healthy recordings only (searched recursively): write an "
                         "anomaly model (detector, no network)")
    ap.add_argument("--false-alarm", type=float, default=0.001,
                    help="--normal-only: target false-alarm rate per window (default 0.001)")
    ap.add_argument("--bands", type=int, default=32, choices=(8, 16, 32, 64),
                    help="--normal-only: spectral bands of the features (default 32)")
    ap.add_argument("--no-level", action="store_true",
                    help="--normal-only: leave the window's level (log rms) out of the features")
    ap.add_argument("--fit-hop", type=int, default=64,
                    help="--normal-only: hop of the windows fitted and calibrated (default 64)")
    a = ap.parse_args(argv)
    try:
        a.snr_range = tuple(float(v) for v in a.snr.split(","))
        a.bg_range = tuple(float(v) for v in a.background_snr.split(","))
        assert len(a.snr_range) == 2 and len(a.bg_range) == 2
    except (ValueError, AssertionError):
        ap.error("--snr and --background-snr take LOW,HIGH in dB")
    if not 0 <= a.val_fraction < 1:
        ap.error("--val-fraction must be in [0, 1)")
    if not 1 <= a.rate <= 10000000:
        ap.error("--rate must be 1 to 10000000 Hz")
    if not 0 <= a.color <= 1 or a.color_db < 0 or a.tilt_db < 0:
        ap.error("--color must be in [0, 1], --color-db and --tilt-db not negative")
    if a.epochs < 1 or a.batch < 1 or a.patience < 1 or a.val_hop < 1:
        ap.error("--epochs, --batch, --patience and --val-hop must be positive")
    a.class_list = [c for c in a.classes.split(",")] if a.classes else None
    if a.class_list and (len(set(a.class_list)) != len(a.class_list) or "" in a.class_list
                         or ds.BACKGROUND in a.class_list):
        ap.error("--classes: names must be distinct, non-empty and not 'background'")
    return a


def check_output(a, classes):
    """Refuse before any work: an unwritable folder (73) or an existing
    model at -o with other classes unless --force (65)."""
    out = os.path.abspath(a.output)
    d = os.path.dirname(out)
    if not os.path.isdir(d):
        raise DataError(ds.EX_CANTCREAT, f"{a.output}: folder {d} does not exist")
    if not os.access(d, os.W_OK):
        raise DataError(ds.EX_CANTCREAT, f"{a.output}: folder {d} is not writable")
    if os.path.exists(out) and not a.force:
        try:
            import export
            _, meta = export.load(out)
            old = meta.get("trident.classes")
        except Exception as e:  # noqa: BLE001 - any unreadable old file
            raise DataError(ds.EX_DATAERR, f"{a.output}: exists and is not a readable model "
                            f"({e}); pass --force to replace it")
        if old is not None and old.split(",") != list(classes):
            raise DataError(ds.EX_DATAERR, f"{a.output}: existing model has classes {old}, "
                            f"not {','.join(classes)}; pass --force to replace it")


class Augmenter:
    """Random training windows with the robustness augmentations, all from
    one numpy Generator (seeded): random offset (time shift), speed change
    by linear-interpolation resampling, gain, additive white noise at a
    random SNR, background mixing at a random SNR, and a random transfer
    function (a smooth gain curve over log frequency, applied in the
    frequency domain, circular over the window: another mounting, sensor or
    machine colours the same fault differently).  Classes are drawn
    uniformly (class balancing by sampling), then a recording of the class
    with probability proportional to its length."""

    def __init__(self, train, classes, a, rng):
        self.rng, self.a, self.classes = rng, a, classes
        self.by_class = [[r.samples for r in train if r.cls == c] for c in classes]
        self.p = [np.array([len(x) for x in xs], float) / sum(len(x) for x in xs)
                  for xs in self.by_class]
        self.bg = [r.samples for r in train if r.cls == ds.BACKGROUND]

    def _cut(self, x, speed):
        need = int(np.ceil(WINDOW * speed)) + 1
        if len(x) < need:
            speed, need = (len(x) - 1) / WINDOW, len(x)
        off = self.rng.integers(0, len(x) - need + 1)
        seg = x[off:off + need].astype(np.float64)
        if abs(speed - 1.0) < 1e-12:
            return seg[:WINDOW]
        return np.interp(np.arange(WINDOW) * speed, np.arange(need), seg)

    def _color(self, w, rate):
        """w through a random smooth transfer function: gains at 9 knots
        log-spaced from 30 Hz to rate/2, drawn N(0, color_db), plus a tilt
        of +-tilt_db per octave, interpolated over log frequency."""
        a, rng = self.a, self.rng
        knots = np.linspace(np.log2(30.0), np.log2(max(rate / 2.0, 60.0)), 9)
        lf = np.log2(np.maximum(np.fft.rfftfreq(len(w), 1.0 / rate), 30.0))
        g = (rng.normal(0.0, a.color_db, len(knots))
             + rng.uniform(-a.tilt_db, a.tilt_db) * (knots - knots.mean()))
        return np.fft.irfft(np.fft.rfft(w) * 10 ** (np.interp(lf, knots, g) / 20), len(w))

    def batch(self, n):
        rng, a = self.rng, self.a
        ys = rng.integers(0, len(self.classes), n)
        out = np.empty((n, WINDOW), np.float32)
        for i, c in enumerate(ys):
            xs = self.by_class[c]
            x = xs[rng.choice(len(xs), p=self.p[c])]
            w = self._cut(x, 1.0 + rng.uniform(-a.speed, a.speed))
            if a.color > 0 and rng.random() < a.color:
                w = self._color(w, a.rate)
            w = w * 10 ** (rng.uniform(-a.gain_db, a.gain_db) / 20)
            p = np.mean(w * w) + 1e-30
            if self.bg and rng.random() < 0.5:
                b = self.bg[rng.integers(len(self.bg))]
                bw = self._cut(b, 1.0)
                pb = np.mean(bw * bw) + 1e-30
                w = w + bw * np.sqrt(p / pb / 10 ** (rng.uniform(*a.bg_range) / 10))
            if rng.random() < a.noise_prob:
                snr = rng.uniform(*a.snr_range)
                w = w + rng.standard_normal(WINDOW) * np.sqrt(p / 10 ** (snr / 10))
            out[i] = w
        return out, ys.astype(np.int64)


def evaluate(net, val, classes, hop):
    """metrics() of the validation recordings, windows every hop from 0 (the
    daemon's --hop), no augmentation."""
    import card
    true, pred, per = [], [], {}
    for r in val:
        w = ds.windows(r.samples, hop)
        p = [classes[i] for i in ds.logits(net, w).argmax(1)] if len(w) else []
        per[r.rel] = (r.cls, p)
        true += [r.cls] * len(p)
        pred += p
    return card.metrics(true, pred, classes, per)


def fmt_s(s):
    s = int(round(s))
    return f"{s // 60}:{s % 60:02d}"


def fit(a, classes, tr, val, out=sys.stdout, quiet=None):
    """Train a Net on the training Recordings tr (seeded by a.seed), early
    stopping on val (class-balanced accuracy; no val: every epoch runs and
    the last is kept).  Adam at a.lr with a cosine schedule to 0 over
    a.epochs.  Returns (net with the kept weights, their validation metrics
    or None, the kept epoch, epochs run, history, windows per epoch)."""
    import torch
    import torch.nn.functional as F
    from net import Net, normalize
    quiet = a.quiet if quiet is None else quiet
    torch.manual_seed(a.seed)
    np.random.seed(a.seed)
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(a.threads)
    rng = np.random.default_rng(a.seed)
    aug = Augmenter(tr, classes, a, rng)
    n_tr = sum(len(r.samples) // WINDOW for r in tr if r.cls != ds.BACKGROUND)
    per_epoch = a.windows_per_epoch or min(max(n_tr, a.batch), 4000)
    steps = max(1, per_epoch // a.batch)
    net = Net(len(classes))
    opt = torch.optim.Adam(net.parameters(), lr=a.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=a.epochs * steps)
    best, best_ep, best_sd, best_m, since = -1.0, 0, None, None, 0
    history, t_train = [], time.time()
    ep = 0
    for ep in range(1, a.epochs + 1):
        net.train()
        t1, lsum = time.time(), 0.0
        for _ in range(steps):
            xb, yb = aug.batch(a.batch)
            xt = torch.from_numpy(normalize(xb, "zscore")).unsqueeze(1)
            opt.zero_grad()
            loss = F.cross_entropy(net(xt), torch.from_numpy(yb))
            loss.backward()
            opt.step()
            sched.step()
            lsum += loss.item()
        net.eval()
        loss = lsum / steps
        if val:
            m = evaluate(net, val, classes, a.val_hop)
            score = m["balanced_accuracy"]
        else:
            m, score = None, None
        improved = score is None or score > best
        if improved:
            best, best_ep, best_m, since = (score if score is not None else best), ep, m, 0
            best_sd = copy.deepcopy(net.state_dict())
        else:
            since += 1
        el = time.time() - t_train
        left = el / ep * (a.epochs - ep)
        history.append({"epoch": ep, "loss": round(loss, 6),
                        "val_balanced_accuracy": score, "seconds": round(time.time() - t1, 2)})
        if not quiet:
            va = f"val balanced acc {100 * score:6.2f}%" if score is not None else "no validation"
            print(f"epoch {ep:3d}/{a.epochs}: loss {loss:.4f}, {va}{' *' if improved and val else '  '} "
                  f"elapsed {fmt_s(el)}, left at most {fmt_s(left)}", file=out, flush=True)
        if val and since >= a.patience:
            if not quiet:
                print(f"early stop: no better validation for {a.patience} epochs", file=out, flush=True)
            break
    net.load_state_dict(best_sd)
    return net, best_m, best_ep, ep, history, steps * a.batch


def train(a, out=sys.stdout, recs=None):
    """The whole run; returns the card dict.  Raises DataError.  recs:
    (classes, Recordings) already discovered (model/train/train.py builds
    the shipped model's from the CWRU manifest); default: discover a.data."""
    t0 = time.time()
    classes, recs = recs if recs is not None else ds.discover(a.data, a.class_list)
    check_output(a, classes)
    prep = ds.find_prep(a.prep)
    ds.load_samples(recs, prep, a.rate, a.channel)
    tr, val = ds.split_recordings(recs, classes, a.val_fraction, a.seed)
    if a.val_fraction > 0:
        for c in classes:
            if not any(len(ds.windows(r.samples, a.val_hop)) for r in val if r.cls == c):
                raise DataError(ds.EX_DATAERR, f"class {c!r}: its validation recordings hold no "
                                "window; add recordings or pass --val-fraction 0")

    import torch
    import card
    bg = [r.rel for r in tr if r.cls == ds.BACKGROUND]
    n_tr = sum(len(r.samples) // WINDOW for r in tr if r.cls != ds.BACKGROUND)
    per_epoch = a.windows_per_epoch or min(max(n_tr, a.batch), 4000)
    print(f"{PROG}: {len(recs)} recordings, classes {','.join(classes)}, {a.rate} Hz; "
          f"train {sum(r.cls != ds.BACKGROUND for r in tr)}, validation {len(val)}"
          + (f", background {len(bg)}" if bg else "")
          + f"; {max(1, per_epoch // a.batch) * a.batch} windows per epoch "
          f"({time.time() - t0:.1f} s to prepare)", file=out, flush=True)
    t_train = time.time()
    net, best_m, best_ep, ep, history, per_epoch = fit(a, classes, tr, val, out)
    import export
    meta = export.metadata(classes, a.rate, "zscore")
    meta["trident.trainer"] = f"trident-train {trainer_version()}"
    extra, openset = None, None
    if not a.no_openset:
        import detector
        items = [(r.group, classes.index(r.cls), ds.windows(r.samples, detector.OPENSET_HOP))
                 for r in recs if r.cls in classes]
        extra, md_or_why, *rep = detector.fit_openset(items, classes, a.false_alarm)
        if extra is None:
            print(f"{PROG}: no open-set detector: {md_or_why}", file=out, flush=True)
            openset = {"skipped": md_or_why}
        else:
            meta.update(md_or_why)
            openset = rep[0]
            print(f"open-set detector: threshold {openset['threshold']:.3f} over "
                  f"{openset['calibration_windows']} out-of-recording windows", file=out, flush=True)
    card.save_model_atomic(a.output, net.state_dict(), meta, extra)
    with open(a.output, "rb") as f:
        sha = hashlib.sha256(f.read()).hexdigest()
    per_class = {c: {"train_recordings": sum(r.cls == c for r in tr),
                     "val_recordings": sum(r.cls == c for r in val),
                     "train_windows": sum(len(r.samples) // WINDOW for r in tr if r.cls == c)}
                 for c in classes}
    opts = {k: v for k, v in vars(a).items() if k not in ("snr_range", "bg_range", "class_list", "prep")}
    opts["output"] = os.path.basename(a.output)    # no machine paths in a card
    c = {"model": os.path.basename(a.output), "sha256": sha,
         "classes": classes, "sample_rate": a.rate, "normalize": "zscore", "window": WINDOW,
         "trainer_version": trainer_version(), "torch": torch.__version__, "seed": a.seed,
         "seconds": round(time.time() - t0, 1),
         "data_fingerprint": ds.fingerprint(recs),
         "data": {"source": a.data, "per_class": per_class, "background": bg,
                  "train": [r.rel for r in tr], "validation": [r.rel for r in val]},
         "validation": best_m, "openset": openset,
         "training": {"epochs_run": ep, "best_epoch": best_ep, "history": history,
                      "windows_per_epoch": per_epoch, "val_hop": a.val_hop,
                      "optimizer": f"Adam lr {a.lr}, cosine schedule to 0, batch {a.batch}",
                      "balancing": "classes drawn uniformly per training window"},
         "options": opts}
    jp, mp = card.write_card(a.output, c)
    print(f"\n{PROG}: summary: {ep} epochs in {fmt_s(time.time() - t_train)}, best epoch {best_ep}",
          file=out)
    if best_m:
        print(card.format_confusion(best_m), file=out)
        print(card.format_recordings(best_m), file=out)
    print(f"wrote {a.output} (sha256 {sha[:12]}), {jp}, {mp}", file=out, flush=True)
    return c


def main(argv=None):
    ds.need_torch(PROG)
    a = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        if a.normal_only:
            import detector
            detector.train_normal_only(a)
        else:
            train(a)
    except DataError as e:
        print(f"{PROG}: {e}", file=sys.stderr)
        return e.code
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted; {a.output} not written", file=sys.stderr)
        return 130
    except OSError as e:
        print(f"{PROG}: {e.filename or a.output}: {e.strerror or e}", file=sys.stderr)
        return ds.EX_CANTCREAT
    return 0


if __name__ == "__main__":
    sys.exit(main())
