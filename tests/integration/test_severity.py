# SPDX-License-Identifier: Apache-2.0
"""test_severity.py — severity = { ... } through the real daemon (issue 17 part 2).

Sines of known amplitude and frequency, as float WAV files at the model's
rate, each a file stream with its sensor scale; what must hold:
  1. every _severity message's velocity RMS is a / (sqrt 2 * 2 pi f0) to 1 %
     (scale = m/s^2 per unit, and sensitivity = units per g), the blocks are
     back to back (sample, seconds) and as many as the file holds;
  2. the zone follows the configured group and foundation (the same 2.25 mm/s
     is B on a rigid, A on a flexible foundation, group 2);
  3. a NaN in the input: that block's velocity and zone are null, the others
     are right;
  4. _stats give the last velocity and zone and the block count;
  5. scale and sensitivity both given: refused at FILE:LINE, exit 78;
  6. bearing defects on the shipped CWRU recordings (SKF 6205, load 3): the
     defect frequencies as the formulas give them, the inner-race fault's
     envelope peak at BPFI and the outer-race fault's at BPFO at least 25 dB
     and 15 dB above the other race's, the healthy recording's all under 12 dB;
     a half-given bearing, or balls as big as the pitch circle, refused at
     FILE:LINE (exit 78), an envelope band above the model's Nyquist refused
     at start-up (exit 78).
"""
import json
import math
import os
import subprocess
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402
from harness import daemon_conf, last_stats, run_daemon  # noqa: E402

T = harness.Tap()
MODEL = os.path.join(harness.ROOT, "model", "cwru.safetensors")
TMP = harness.tmpdir("trident-sev-")
RATE = 12000
SECONDS = 12
BLOCK = 16384           # the next power of two above 1 s at 12 kHz


def sine(path, amp, f0, nan_at=None):
    t = np.arange(SECONDS * RATE) / RATE
    x = (amp * np.sin(2 * math.pi * f0 * t + 0.7)).astype(np.float32)
    if nan_at is not None:
        x[nan_at] = np.nan
    harness.write_wav(path, x, RATE)


def v_rms(a, f0):
    return 1000.0 * a / (math.sqrt(2) * 2 * math.pi * f0)


for build in os.environ.get("TRIDENT_BUILDS", "build").split():
    exe = harness.binpath("tridentd", build)
    tag = os.path.basename(build)
    tmp = os.path.join(TMP, tag)
    os.makedirs(tmp)
    # a: 3.11 m/s^2 at 100 Hz (scale 10 per unit): 3.5 mm/s, zone C (group 2, rigid)
    # b, c: 1 m/s^2 at 50 Hz from a 0.1-per-g sensor: 2.25 mm/s, B rigid / A flexible
    # d: as a, with a NaN in the third block
    a_amp = 3.5e-3 * math.sqrt(2) * 2 * math.pi * 100
    sine(os.path.join(tmp, "a.wav"), a_amp / 10, 100)
    sine(os.path.join(tmp, "b.wav"), 1.0 / 9.80665 * 0.1, 50)
    sine(os.path.join(tmp, "d.wav"), a_amp / 10, 100, nan_at=2 * BLOCK + 5000)
    streams = ", ".join([
        f'{{ name = "a"; type = "file"; path = "{tmp}/a.wav"; pace = "fast"; '
        'severity = { scale = 10.0; }; }',
        f'{{ name = "b"; type = "file"; path = "{tmp}/b.wav"; pace = "fast"; '
        'severity = { sensitivity = 0.1; }; }',
        f'{{ name = "c"; type = "file"; path = "{tmp}/b.wav"; pace = "fast"; '
        'severity = { sensitivity = 0.1; foundation = "flexible"; }; }',
        f'{{ name = "d"; type = "file"; path = "{tmp}/d.wav"; pace = "fast"; '
        'severity = { scale = 10.0; }; }',
        # 0.1 s: 2048-sample blocks, several of them per chunk the windower reads,
        # and a hop far above the block: every block still published
        f'{{ name = "e"; type = "file"; path = "{tmp}/a.wav"; pace = "fast"; hop = 8192; '
        'severity = { scale = 10.0; seconds = 0.1; }; }'])
    conf = daemon_conf(tmp, MODEL, streams, stats=0.5)
    want_blocks = SECONDS * RATE // BLOCK

    def sev(ms, s):
        return [m for m in ms if m.get("stream") == s and "velocity_mm_s" in m and "label" not in m
                and "streams" not in m]

    msgs, err, rc = run_daemon(exe, conf, dict(os.environ), 240,
                               lambda ms: all(len(sev(ms, s)) >= want_blocks for s in "abcd")
                               and all(last_stats(ms, s).get("eof") for s in "abcde"))
    T.ok(f"{tag}: exit 0, no sanitizer report", rc == 0 and not harness.sanitizer_report(err),
         f"rc {rc}: {err[-300:]}")
    for s, want, zone in (("a", 3.5, "C"), ("b", v_rms(1.0, 50), "B"), ("c", v_rms(1.0, 50), "A")):
        m = sev(msgs, s)
        vs = [x["velocity_mm_s"] for x in m]
        T.ok(f"{tag}: stream {s}: {len(m)} blocks, velocity {want:.3f} mm/s to 1 % "
             f"({min(vs) if vs else 0:.4f}..{max(vs) if vs else 0:.4f})",
             len(m) == want_blocks and all(abs(v - want) < 0.01 * want for v in vs))
        T.ok(f"{tag}: stream {s}: zone {zone}; blocks back to back, {BLOCK / RATE:.4f} s each",
             all(x["zone"] == zone for x in m)
             and [x["sample"] for x in m] == [k * BLOCK for k in range(len(m))]
             and all(abs(x["seconds"] - BLOCK / RATE) < 1e-6 for x in m),
             json.dumps(m[:1]))
    m = sev(msgs, "d")
    T.ok(f"{tag}: a NaN: its block's velocity and zone are null, the others right",
         len(m) == want_blocks and m[2]["velocity_mm_s"] is None and m[2]["zone"] is None
         and all(abs(x["velocity_mm_s"] - 3.5) < 0.035 for i, x in enumerate(m) if i != 2),
         json.dumps(m[:3]))
    m = sev(msgs, "e")
    n_e = SECONDS * RATE // 2048
    # Blocks after the last window cut have no window to go out with: they
    # are counted as dropped, the rest published; together every block.
    dropped = last_stats(msgs, "e").get("severity", {}).get("dropped")
    T.ok(f"{tag}: 0.1-s blocks, hop 8192: {len(m)} of {n_e} blocks published, in order, "
         f"back to back, {dropped} after the last window counted as dropped",
         n_e - 8 <= len(m) <= n_e and [x["sample"] for x in m] == [k * 2048 for k in range(len(m))]
         and all(abs(x["velocity_mm_s"] - 3.5) < 0.035 for x in m)
         and dropped is not None and len(m) + dropped == n_e,
         f"{len(m)}: {json.dumps(last_stats(msgs, 'e').get('severity'))}")
    st = last_stats(msgs, "a").get("severity", {})
    T.ok(f"{tag}: _stats: the last velocity and zone, the block count",
         st.get("blocks") == want_blocks and abs(st.get("velocity_mm_s", 0) - 3.5) < 0.035
         and st.get("zone") == "C", json.dumps(st))

    bad = os.path.join(tmp, "bad.conf")
    with open(bad, "w") as f:
        f.write(f'model = "{MODEL}";\nstreams = ( {{ name = "a"; type = "file"; '
                f'path = "{tmp}/a.wav";\n  severity = {{ scale = 1.0;\n  sensitivity = 0.1; }}; }} );\n')
    r = subprocess.run([exe, "-c", bad, "--check"], capture_output=True, text=True, timeout=60)
    T.ok(f"{tag}: scale and sensitivity both: refused at FILE:LINE, exit 78",
         r.returncode == 78 and f"{bad}:4:" in r.stderr and "not both" in r.stderr,
         f"rc {r.returncode}: {r.stderr}")
    # 6. bearing defects: the fixtures are load-3 slices (1721-1725 rpm) and the
    # held-back normal tail (load 0, 1797 rpm)
    fx = os.path.join(harness.ROOT, "tests", "fixtures", "cwru")
    bearing = "balls = 9; ball_diameter = 7.94; pitch_diameter = 39.04;"
    streams = ", ".join(
        f'{{ name = "{c}"; type = "file"; path = "{fx}/{c}.wav"; pace = "fast"; '
        f'severity = {{ sensitivity = 1.0; rpm = {rpm}; {bearing} }}; }}'
        for c, rpm in (("inner", 1721), ("outer", 1725), ("normal", 1797)))
    conf = daemon_conf(tmp, MODEL, streams, stats=0.5)
    msgs, err, rc = run_daemon(exe, conf, dict(os.environ), 240,
                               lambda ms: all(last_stats(ms, s).get("eof")
                                              for s in ("inner", "outer", "normal")))
    T.ok(f"{tag}: bearing: exit 0, no sanitizer report", rc == 0 and not harness.sanitizer_report(err),
         f"rc {rc}: {err[-300:]}")

    def defects(s):
        return [m["defects"] for m in sev(msgs, s) if m.get("defects")]

    fr, r = 1721 / 60, 7.94 / 39.04
    want = {"ftf": fr / 2 * (1 - r), "bpfo": 9 * fr / 2 * (1 - r), "bpfi": 9 * fr / 2 * (1 + r),
            "bsf": 39.04 / (2 * 7.94) * fr * (1 - r * r)}
    d_in, d_out, d_no = defects("inner"), defects("outer"), defects("normal")
    T.ok(f"{tag}: bearing: the defect frequencies of a 6205 at 1721 rpm",
         d_in and all(abs(d_in[0][k]["hz"] - v) < 1e-3 * v for k, v in want.items()),
         json.dumps(d_in[:1]))
    T.ok(f"{tag}: bearing: inner-race fault: BPFI stands out (>= 25 dB, 15 dB over BPFO)",
         len(d_in) == 2 and all(d["bpfi"]["db"] >= 25 and d["bpfi"]["db"] >= d["bpfo"]["db"] + 15
                                for d in d_in), json.dumps(d_in))
    T.ok(f"{tag}: bearing: outer-race fault: BPFO stands out (>= 25 dB, 15 dB over BPFI)",
         len(d_out) == 2 and all(d["bpfo"]["db"] >= 25 and d["bpfo"]["db"] >= d["bpfi"]["db"] + 15
                                 for d in d_out), json.dumps(d_out))
    T.ok(f"{tag}: bearing: healthy: nothing above 12 dB",
         len(d_no) == 1 and all(v["db"] < 12 for v in d_no[0].values()), json.dumps(d_no))
    for name, sev_conf, line in (
            ("a half-given bearing", "sensitivity = 1.0;\n  rpm = 1797; balls = 9;", 4),
            ("balls as big as the pitch circle",
             f"sensitivity = 1.0; rpm = 1797; balls = 9;\n  ball_diameter = 40.0; "
             "pitch_diameter = 39.04;", 4)):
        bad = os.path.join(tmp, "bad.conf")
        with open(bad, "w") as f:
            f.write(f'model = "{MODEL}";\nstreams = ( {{ name = "a"; type = "file"; '
                    f'path = "{fx}/inner.wav";\n  severity = {{ {sev_conf} }}; }} );\n')
        r = subprocess.run([exe, "-c", bad, "--check"], capture_output=True, text=True, timeout=60)
        T.ok(f"{tag}: {name}: refused at FILE:LINE, exit 78",
             r.returncode == 78 and f"{bad}:{line}:" in r.stderr and "severity" in r.stderr,
             f"rc {r.returncode}: {r.stderr}")
    bad = os.path.join(tmp, "bad.conf")
    with open(bad, "w") as f:
        f.write(f'model = "{MODEL}";\nstreams = ( {{ name = "a"; type = "file"; '
                f'path = "{fx}/inner.wav";\n  severity = {{ sensitivity = 1.0; rpm = 1797; '
                f'{bearing} envelope_hz = 7000.0; }}; }} );\n')
    r = subprocess.run([exe, "-c", bad, "--endpoint", harness.free_endpoint()],
                       capture_output=True, text=True, timeout=60)
    T.ok(f"{tag}: envelope_hz above the model's Nyquist: refused at start-up, exit 78, one line",
         r.returncode == 78 and "severity.envelope_hz" in r.stderr, f"rc {r.returncode}: {r.stderr}")
T.done()
