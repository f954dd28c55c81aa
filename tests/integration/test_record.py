# SPDX-License-Identifier: Apache-2.0
"""test_record.py — record = { ... } and keep = { ... } through the real daemon.

Issue 15.  What must hold:
  1. file source (a 16-bit CWRU recording at 12 kHz, and a HIT-SM recording at
     51.2 kHz that the daemon resamples): the recorded files, in the order of
     their first_sample, are the input's samples bit for bit, across rotations
     by size and by age: each file starts where the last ended, none is over
     max_bytes, every sidecar is complete, lists no loss, and _stats count
     the files and samples;
  2. kept clips match their windows: a clip's samples are the input's at the
     window's sample (bit-exact), its sidecar's seq, label, state and score
     are those of the published window, every clip has a reason that holds
     for that window, and every window due is kept (a fast file source's
     publisher waits for the writer);
  3. ALSA (tests/alsa's paced device, 2 channels): each channel's files are
     the device's frames from frame 0 on, across rotations;
  4. a slow disk (the writer throttled: TRIDENT_TEST_RECORD_DELAY_MS) makes
     counted losses and never a capture xrun or a dropped sample: the files
     with their sidecars' "writer" losses put back are the device's frames
     at the right positions, and the losses add up to _stats record.lost;
  5. a full tmpfs (mounted here; skipped, and said so, without the right to
     mount) stops the recording with one log line and "stopped" in _stats,
     while windows are still classified and published;
  6. bad settings: keep.unsure_below = 2 refused at FILE:LINE (exit 78); a
     record.path that cannot be a directory is one line naming it, exit 78.
"""
import glob
import json
import os
import subprocess
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402
from harness import daemon_conf, last_stats, run_daemon, windows_of  # noqa: E402

T = harness.Tap()
ERRS = []


def run(*a, **k):
    msgs, err, rc = run_daemon(*a, **k)
    ERRS.append(err)
    return msgs, err, rc

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
MODEL = os.path.abspath(os.path.join(ROOT, "model", "cwru.safetensors"))
TMP = harness.tmpdir("trident-rec-")
WIN = 1024


def recordings(folder):
    """[(sidecar, samples)] of a record.path, by first_sample."""
    out = []
    for js in glob.glob(os.path.join(folder, "*.json")):
        with open(js) as f:
            meta = json.load(f)
        x, rate = harness.read_wav(js[:-5] + ".wav")
        out.append((meta, x[:, 0]))
    out.sort(key=lambda r: r[0]["first_sample"])
    return out


def continuous(recs):
    """Each file starts where the last ended (first_sample + samples + writer losses)."""
    nxt = 0
    for meta, x in recs:
        if meta["first_sample"] != nxt or meta["samples"] != len(x):
            return False
        nxt = meta["first_sample"] + meta["samples"] + meta["lost_writer"]
    return True


def rebuild(recs):
    """(positions, samples): every recorded sample at its stream position."""
    pos, val = [], []
    for meta, x in recs:
        p, i = meta["first_sample"], 0
        for loss in sorted(meta["losses"], key=lambda e: e["at"]):
            k = loss["at"] - i
            pos.append(np.arange(p, p + k))
            val.append(x[i:loss["at"]])
            p, i = p + k, loss["at"]
            if loss["why"] == "writer":
                p += loss["n"]
        pos.append(np.arange(p, p + len(x) - i))
        val.append(x[i:])
    return np.concatenate(pos), np.concatenate(val)


def cwru16():
    files = sorted(glob.glob(os.path.join(harness.CWRU, "load0", "*inner*007*.wav"))) or \
        sorted(glob.glob(os.path.join(harness.CWRU, "load0", "*.wav")))
    x = harness.read_wav(files[0])[0][:6 * 12000, 0] / 4.0
    return np.clip(np.round(x * 32768.0), -32768, 32767).astype("<i2")


for build in os.environ.get("TRIDENT_BUILDS", "build").split():
    exe = harness.binpath("tridentd", build)
    tag = os.path.basename(build)
    tmp = os.path.join(TMP, tag)
    os.makedirs(tmp)
    env = dict(os.environ)

    # ---- 1, 2: file sources -------------------------------------------------
    x16 = cwru16()
    wav16 = os.path.join(tmp, "c16.wav")
    harness.write_wav(wav16, x16.astype(np.float32) / 32768.0, 12000, "s16")
    hit = sorted(glob.glob(os.path.join(harness.SHARED, "data", "hit-sm", "selfbuilt", "normal",
                                        "*.wav")))[0]
    xh, rh = harness.read_wav(hit)
    rec_a, rec_b, keep_a = (os.path.join(tmp, d) for d in ("rec_a", "rec_b", "keep_a"))
    streams = (f'{{ name = "c16"; type = "file"; path = "{wav16}"; pace = "fast"; hop = 512; '
               f'record = {{ path = "{rec_a}"; max_bytes = 40000; }}; '
               f'keep = {{ path = "{keep_a}"; unsure_below = 1.0; events = false; max_per_minute = 100000; }}; }}, '
               f'{{ name = "hit"; type = "file"; path = "{hit}"; pace = "fast"; '
               f'record = {{ path = "{rec_b}"; max_age = 0.25; }}; }}')
    conf = daemon_conf(tmp, MODEL, streams, stats=0.5)
    n_a = (len(x16) - WIN) // 512 + 1
    msgs, err, rc = run(exe, conf, env, 240,
                               lambda m: len(windows_of(m, "c16")) >= n_a
                               and last_stats(m, "hit").get("eof"))
    T.ok(f"{tag}: file streams: exit 0", rc == 0, f"rc {rc}: {err[-400:]}")
    ra = recordings(rec_a)
    ta = np.concatenate([x for _, x in ra]) if ra else np.zeros(0, np.float32)
    T.ok(f"{tag}: 16-bit file: {len(ra)} files are the input bit for bit",
         len(ra) >= 5 and np.array_equal(ta, x16.astype(np.float32) / 32768.0),
         f"{len(ta)} samples recorded of {len(x16)}, first difference at "
         f"{np.flatnonzero(ta[:len(x16)] != x16[:len(ta)] / 32768.0)[:3]}")
    T.ok(f"{tag}: 16-bit file: each file starts where the last ended, none over max_bytes",
         continuous(ra) and all(os.path.getsize(os.path.join(rec_a, f)) <= 40000
                                for f in os.listdir(rec_a) if f.endswith(".wav")))
    T.ok(f"{tag}: 16-bit file: sidecars complete, no loss, named stream-time-first",
         all(m["complete"] and not m["losses"] and m["rate"] == 12000 and m["stream"] == "c16"
             and m["model"] and os.path.exists(os.path.join(
                 rec_a, f'c16-{m["start"][:4]}{m["start"][5:7]}{m["start"][8:10]}T'
                 f'{m["start"][11:13]}{m["start"][14:16]}{m["start"][17:19]}Z-{m["first_sample"]}.wav'))
             for m, _ in ra), json.dumps(ra[0][0]) if ra else "none")
    rb = recordings(rec_b)
    tb = np.concatenate([x for _, x in rb]) if rb else np.zeros(0, np.float32)
    T.ok(f"{tag}: 51.2 kHz file (resampled for the model): recorded at its own rate, bit for bit, "
         f"rotated by age ({len(rb)} files of at most 0.25 s)",
         len(rb) >= 4 and all(m["rate"] == rh and m["samples"] <= 0.25 * rh + 1 for m, _ in rb)
         and continuous(rb) and np.array_equal(tb, xh[:, 0]), f"{len(tb)} of {len(xh)}")
    st = last_stats(msgs, "c16").get("record", {})
    T.ok(f"{tag}: _stats record counts files and samples",
         st.get("files") == len(ra) and st.get("recorded") == len(x16) and st.get("lost") == 0
         and st.get("stopped") is False, json.dumps(st))

    # 2. kept clips
    win = {m["seq"]: m for m in windows_of(msgs, "c16")}
    clips = []
    for js in sorted(glob.glob(os.path.join(keep_a, "*.json"))):
        with open(js) as f:
            clips.append((json.load(f), harness.read_wav(js[:-5] + ".wav")[0][:, 0]))
    good = [c for c, x in clips if c["seq"] in win
            and np.array_equal(x, x16[c["sample"]:c["sample"] + WIN].astype(np.float32) / 32768.0)
            and win[c["seq"]]["sample"] == c["sample"] and win[c["seq"]]["label"] == c["label"]
            and win[c["seq"]]["state"] == c["state"]
            and abs(win[c["seq"]]["score"] - c["score"]) < 1e-5]
    T.ok(f"{tag}: {len(clips)} kept clips are their windows' samples, label, state and score",
         len(clips) >= 5 and len(good) == len(clips), f"{len(good)} of {len(clips)}")
    why_ok = all((c["kept"] == "unsure" and c["seq"] in win and win[c["seq"]]["score"] < 1.0)
                 or (c["kept"] == "unknown" and c["label"] == "unknown") for c, _ in clips)
    n_due = sum(1 for m in win.values() if m["label"] == "unknown"
                or (m["label"] and m["score"] < 1.0))
    ks = last_stats(msgs, "c16").get("keep", {})
    T.ok(f"{tag}: every clip's reason holds; every window due is kept or counted ({n_due})",
         why_ok and ks.get("kept") == len(clips) == n_due > 0
         and ks.get("kept") == n_due,
         f"{len(clips)} clips, why {why_ok}: {json.dumps(ks)}")

    # the same run again into the same folders: nothing overwritten (the file
    # names repeat within the second, the clips' seq from 0)
    n_wav = len(glob.glob(os.path.join(rec_a, "*.wav")))
    n_clip = len(glob.glob(os.path.join(keep_a, "*.wav")))
    msgs2, err, rc = run(exe, conf, env, 240,
                         lambda m: len(windows_of(m, "c16")) >= n_a
                         and last_stats(m, "hit").get("eof"))
    T.ok(f"{tag}: a second run into the same folders overwrites nothing "
         f"({n_wav} + {n_wav} recordings, {n_clip} + {n_clip} clips)",
         rc == 0 and len(glob.glob(os.path.join(rec_a, "*.wav"))) == 2 * n_wav
         and len(glob.glob(os.path.join(keep_a, "*.wav"))) == 2 * n_clip
         and len(glob.glob(os.path.join(keep_a, "*.json"))) == 2 * n_clip,
         f"{len(glob.glob(os.path.join(rec_a, '*.wav')))} recordings, "
         f"{len(glob.glob(os.path.join(keep_a, '*.wav')))} clips")

    # ---- 3, 4: ALSA ---------------------------------------------------------------
    plugin = os.path.join(build, "alsa", "libasound_module_pcm_trident_test.so")
    raw2 = os.path.join(tmp, "in2.raw")
    x2 = np.stack([x16[:4 * 12000], x16[4 * 12000 - 1::-1]], 1).astype("<i2")
    x2.tofile(raw2)
    raw1 = os.path.join(tmp, "in1.raw")
    x16.tofile(raw1)
    alsa_conf = os.path.join(tmp, "alsa.conf")
    with open(alsa_conf, "w") as f:
        f.write(f'pcm_type.trident_test {{ lib "{os.path.abspath(plugin)}" }}\n'
                f'pcm.tpaced2 {{ type trident_test file "{raw2}" channels 2 rates 12000 '
                f'formats S16_LE }}\n'
                f'pcm.tfast48 {{ type trident_test file "{raw1}" channels 1 rates 48000 '
                f'formats S16_LE }}\n')
    aenv = dict(env, ALSA_CONFIG_PATH=f"/usr/share/alsa/alsa.conf:{alsa_conf}")
    rec_c = os.path.join(tmp, "rec_c")
    conf = daemon_conf(tmp, MODEL, f'{{ name = "cap"; type = "alsa"; device = "tpaced2"; '
                       f'rate = 12000; channels = 2; format = "S16_LE"; '
                       f'record = {{ path = "{rec_c}"; max_bytes = 30000; }}; }}')
    msgs, err, rc = run(exe, conf, aenv, 120, lambda m: len(windows_of(m, "cap/1")) >= 40)
    T.ok(f"{tag}: ALSA capture with recording: exit 0", rc == 0, f"rc {rc}: {err[-400:]}")
    for ch in (0, 1):
        recs = []
        for meta, x in recordings(rec_c):
            if meta["stream"] == f"cap/{ch}":
                recs.append((meta, x))
        pos, val = rebuild(recs) if recs else (np.zeros(0, int), np.zeros(0))
        want = x2[pos % len(x2), ch].astype(np.float32) / 32768.0
        T.ok(f"{tag}: ALSA channel {ch}: {len(recs)} files are the device's frames from 0 on",
             len(recs) >= 3 and continuous(recs) and pos[0] == 0 and np.array_equal(val, want)
             and all(not m["losses"] for m, _ in recs), f"{len(val)} samples")

    # 4. slow disk
    rec_d = os.path.join(tmp, "rec_d")
    conf = daemon_conf(tmp, MODEL, f'{{ name = "slow"; type = "alsa"; device = "tfast48"; '
                       f'rate = 48000; channels = 1; format = "S16_LE"; '
                       f'record = {{ path = "{rec_d}"; max_bytes = 4000000; }}; }}', stats=0.5)
    senv = dict(aenv, TRIDENT_TEST_RECORD_DELAY_MS="400")
    msgs, err, rc = run(exe, conf, senv, 120,
                               lambda m: last_stats(m, "slow").get("record", {}).get("lost", 0) > 0
                               and len(windows_of(m, "slow")) >= 100)
    s = last_stats(msgs, "slow")
    lost = s.get("record", {}).get("lost", 0)
    T.ok(f"{tag}: slow disk: the writer's losses are counted ({lost}), no xrun, nothing dropped",
         rc == 0 and lost > 0 and s.get("xruns") == 0 and s.get("dropped") == 0,
         f"rc {rc} {json.dumps(s)} {err[-300:]}")
    recs = recordings(rec_d)
    pos, val = rebuild(recs) if recs else (np.zeros(0, int), np.zeros(0))
    want = x16[pos % len(x16)].astype(np.float32) / 32768.0
    wl = sum(m["lost_writer"] for m, _ in recs)
    T.ok(f"{tag}: slow disk: files with their listed losses put back are the device's frames",
         len(val) > 0 and pos[0] == 0 and np.array_equal(val, want) and continuous(recs)
         and all(m["lost_input"] == 0 for m, _ in recs), f"{len(val)} samples, {len(recs)} files")
    T.ok(f"{tag}: slow disk: the sidecars' writer losses add up to at least _stats' count",
         wl >= lost > 0, f"sidecars {wl}, _stats {lost}")

    # 4b. beside a live stream the publisher never waits for a slow writer:
    # the fast file's clips that find the slots full are counted instead
    keep_e = os.path.join(tmp, "keep_e")
    conf = daemon_conf(tmp, MODEL, f'{{ name = "live"; type = "alsa"; device = "tpaced2"; '
                       f'rate = 12000; channels = 2; format = "S16_LE"; }}, '
                       f'{{ name = "ff"; type = "file"; path = "{wav16}"; pace = "fast"; hop = 256; '
                       f'keep = {{ path = "{keep_e}"; unsure_below = 1.0; events = false; '
                       f'max_per_minute = 100000; }}; }}', stats=0.5)
    msgs, err, rc = run(exe, conf, dict(aenv, TRIDENT_TEST_RECORD_DELAY_MS="100"), 120,
                        lambda m: last_stats(m, "ff").get("keep", {}).get("full", 0) > 0
                        and len(windows_of(m, "live/0")) >= 20)
    ks = last_stats(msgs, "ff").get("keep", {})
    T.ok(f"{tag}: beside a live stream, a slow writer: the publisher does not wait, "
         f"clips that find no slot are counted ({ks.get('full')})",
         rc == 0 and ks.get("full", 0) > 0, f"rc {rc}: {json.dumps(ks)} {err[-300:]}")

    # ---- 5: full tmpfs ----------------------------------------------------------------
    full = os.path.join(tmp, "full")
    os.makedirs(full)
    m = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=200k", "tmpfs", full],
                       capture_output=True, text=True)
    if m.returncode != 0:
        T.note(f"{tag}: full disk: skipped, cannot mount a tmpfs here ({m.stderr.strip()})")
    else:
        try:
            conf = daemon_conf(tmp, MODEL, f'{{ name = "f"; type = "file"; path = "{wav16}"; '
                               f'pace = "fast"; loop = true; '
                               f'record = {{ path = "{full}/rec"; }}; }}', stats=0.3)
            marks = []

            def enough(ms):
                st = last_stats(ms, "f")
                if st.get("record", {}).get("stopped") and not marks:
                    marks.append(len(windows_of(ms, "f")))
                return bool(marks) and len(windows_of(ms, "f")) >= marks[0] + 200
            msgs, err, rc = run(exe, conf, env, 120, enough)
            st = last_stats(msgs, "f")
            T.ok(f"{tag}: full disk: recording stopped with one log line, \"stopped\" in _stats",
                 rc == 0 and err.count("recording stopped") == 1 and "No space" in err
                 and st.get("record", {}).get("stopped") is True, f"rc {rc}: {err[-400:]}")
            T.ok(f"{tag}: full disk: windows go on being classified after the stop",
                 bool(marks) and len(windows_of(msgs, "f")) >= marks[0] + 200
                 and st.get("record", {}).get("unrecorded", 0) > 0, json.dumps(st))
        finally:
            subprocess.run(["umount", full])

    # ---- 6: bad settings --------------------------------------------------------------
    bad = os.path.join(tmp, "bad.conf")
    with open(bad, "w") as f:
        f.write(f'model = "{MODEL}";\nstreams = ( {{ name = "b"; type = "file"; path = "{wav16}";\n'
                f'  keep = {{ path = "{tmp}/k"; unsure_below = 2.0; }}; }} );\n')
    r = subprocess.run([exe, "-c", bad], capture_output=True, text=True, timeout=60)
    T.ok(f"{tag}: keep.unsure_below = 2 refused at FILE:LINE, exit 78",
         r.returncode == 78 and f"{bad}:3:" in r.stderr and "unsure_below" in r.stderr
         and len(r.stderr.strip().splitlines()) == 1, f"rc {r.returncode}: {r.stderr}")
    with open(bad, "w") as f:
        f.write(f'model = "{MODEL}";\nstreams = ( {{ name = "b"; type = "file"; path = "{wav16}";\n'
                f'  record = {{ path = "{wav16}/sub"; }}; }} );\n')
    r = subprocess.run([exe, "--check", "-c", bad], capture_output=True, text=True, timeout=60)
    T.ok(f"{tag}: --check: a record.path under a file: one line naming it, exit 78",
         r.returncode == 78 and f"{wav16}/sub" in r.stderr and f"{bad}:2:" in r.stderr
         and len([ln for ln in r.stderr.splitlines() if "error" in ln]) == 1,
         f"rc {r.returncode}: {r.stderr[-400:]}")
    with open(bad, "w") as f:
        f.write(f'model = "{MODEL}";\nstreams = ( {{ name = "b"; type = "file"; path = "{wav16}";\n'
                f'  keep = {{ path = "{tmp}/new/keep"; }}; }} );\n')
    r = subprocess.run([exe, "--check", "-c", bad], capture_output=True, text=True, timeout=60)
    T.ok(f"{tag}: --check: a keep.path still to be made passes and is not made",
         r.returncode == 0 and "keeps windows into" in r.stdout and not os.path.exists(f"{tmp}/new"),
         f"rc {r.returncode}: {r.stderr[-300:]}")
    with open(bad, "w") as f:
        f.write(f'model = "{MODEL}";\nstreams = ( {{ name = "b"; type = "file"; path = "{wav16}";\n'
                f'  record = {{ path = "{wav16}/sub"; }}; }} );\n')
    r = subprocess.run([exe, "-c", bad], capture_output=True, text=True, timeout=60)
    T.ok(f"{tag}: a record.path under a file: one line naming it, exit 78",
         r.returncode == 78 and f"{wav16}/sub" in r.stderr
         and len([ln for ln in r.stderr.splitlines() if "error" in ln]) == 1,
         f"rc {r.returncode}: {r.stderr[-400:]}")
    T.ok(f"{tag}: no sanitizer report", not any(harness.sanitizer_report(e) for e in ERRS),
         next((harness.sanitizer_report(e) for e in ERRS if harness.sanitizer_report(e)), ""))
    ERRS.clear()
T.done()
