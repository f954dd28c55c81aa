# SPDX-License-Identifier: Apache-2.0
"""test_alsa.py — the real tridentd capturing from ALSA devices, without a sound card.

The ALSA configuration is written here, into a temporary directory, and given
to the daemon through ALSA_CONFIG_PATH:
  - `tfile`: alsa-lib's file plugin playing a known 2-channel S16_LE recording
    (two CWRU recordings, scaled into 16 bits) — unpaced, bit-exact;
  - `tpaced`, `txrun`, `tnarrow`, `tunplug`, `tother`: tests/alsa/
    pcm_trident_test.c (BUILD/alsa/...), paced by CLOCK_MONOTONIC; txrun forces
    one overrun after 1 s (and writes the frames it lost to a file), tnarrow
    accepts only S16_LE at 8000 or 48000 Hz, tunplug is gone while a file
    exists.

What must hold:
  1. the daemon's windows of the file-plugin capture equal those of the same
     recording replayed from a WAV (--replay) and PyTorch's on the same samples;
  2. a paced capture publishes windows whose t advance by hop/rate (within
     1 ms), at the device's rate (they arrive no faster than their t span,
     within 60 ms, and without a stall), without gaps;
  3. after a forced overrun a window says "gap": true, _stats count the xrun
     and the lost samples (within a period of what the device reports it
     lost: the plugin's loss_file), capture goes on, and the windows up to the gap
     keep t advancing by hop/rate (a re-anchor must not move them);
  4. a device unplugged mid-run comes back (one gap), while another device's
     stream never stops; meanwhile _stats say it is down, the log says when it
     went and came back, and STATUS= counts the streams down;
  5. a device refusing the configured rate and format stops the start-up with
     a message naming the device, what was asked and what it offers;
  6. with the workers stalled for good (TRIDENT_TEST_STALL_AFTER) and an
     unpaced device, the daemon stays up, its memory bounded, and _stats
     count the dropped samples.
The unit test tests/unit/test_alsa_source.c checks the drop counts themselves.
"""
import glob
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402
from harness import daemon_conf, last_stats, run_daemon, windows_of  # noqa: E402

WIN = 1024
RATE = 12000
tap = harness.Tap()
torch.set_num_threads(1)


def recording():
    """[frames, 2] int16: two CWRU recordings (or noise), scaled into 16 bits."""
    files = sorted(glob.glob(os.path.join(harness.CWRU, "load0", "*_007.wav")))
    if len(files) >= 2:
        a = harness.read_wav(files[0])[0][:, 0]
        b = harness.read_wav(files[1])[0][:, 0]
        n = min(len(a), len(b), 8 * RATE)
        x = np.stack([a[:n], b[:n]], 1) / 8.0
    else:
        tap.note(f"no CWRU recordings in {harness.CWRU}: noise instead")
        x = np.random.default_rng(5).standard_normal((8 * RATE, 2)) * 0.1
    return np.clip(np.round(x * 32768.0), -32768, 32767).astype("<i2")


def one_loss(gaps, hop):
    """Gap flags of one loss: the windows holding its first sample, 1024 / hop
    of them in a row (hop divides 1024 here)."""
    return bool(gaps) and gaps == list(range(gaps[0], gaps[0] + max(1, 1024 // hop)))


def stats_of(msgs, stream):
    """[(t of the _stats message, the stream's entry)] in order."""
    return [(m["t"], s) for m in msgs if isinstance(m.get("streams"), list)
            for s in m["streams"] if s.get("stream") == stream]


def check_build(build):
    """Every scenario against one build (sanitizer builds report through the exit status)."""
    tag = os.path.basename(build)

    def ok(name, cond=True, why=""):
        return tap.ok(f"{tag}: {name}", cond, why)

    binary = os.path.join(build, "bin", "tridentd")
    plugin = os.path.join(build, "alsa", "libasound_module_pcm_trident_test.so")
    if not os.path.exists(binary) or not os.path.exists(plugin):
        ok("tridentd and the ALSA test plugin are built", False, f"{binary}, {plugin}")
        return
    with tempfile.TemporaryDirectory() as tmp:
        x16 = recording()
        raw = os.path.join(tmp, "rec.raw")
        x16.tofile(raw)
        wav = os.path.join(tmp, "rec.wav")
        harness.write_wav(wav, x16.astype(np.float32) / 32768.0, RATE, "s16")
        rnd = harness.make_model(os.path.join(tmp, "m.safetensors"), 11, classes=["a", "b", "c", "d"])
        model = rnd["path"]

        alsa_conf = os.path.join(tmp, "alsa.conf")
        gone = os.path.join(tmp, "gone")
        lost_file = os.path.join(tmp, "lost")   # txrun writes the frames its overrun lost
        with open(alsa_conf, "w") as f:
            f.write(f'pcm_type.trident_test {{ lib "{os.path.abspath(plugin)}" }}\n'
                    f'pcm.tfile {{ type file slave {{ pcm {{ type null }} }} file "/dev/null" '
                    f'infile "{raw}" }}\n'
                    f'pcm.tpaced {{ type trident_test file "{raw}" channels 2 rates {RATE} '
                    f'formats S16_LE }}\n'
                    f'pcm.txrun {{ type trident_test file "{raw}" channels 2 xrun_at "1000ms" '
                    f'loss_file "{lost_file}" }}\n'
                    f'pcm.tnarrow {{ type trident_test rates "8000,48000" formats S16_LE }}\n'
                    f'pcm.tunplug {{ type trident_test file "{raw}" channels 2 '
                    f'unplug_file "{gone}" }}\n'
                    f'pcm.tother {{ type trident_test file "{raw}" channels 1 }}\n'
                    f'pcm.tfast {{ type trident_test file "{raw}" channels 2 paced no }}\n')
        env = dict(os.environ)
        env["ALSA_CONFIG_PATH"] = f"/usr/share/alsa/alsa.conf:{alsa_conf}"

        # 1. Bit-exact: file plugin vs replay vs PyTorch.  The file plugin is
        # not paced, so the daemon's ring fills and later blocks are dropped:
        # only the windows before the first gap are compared.
        # On the normal build this runs with the fast path and with the reference
        # forward (TRIDENT_NET=ref); sanitizer builds run the fast path only.
        impls = ("auto", "ref") if os.path.basename(build) == "build" else ("auto",)
        for impl in impls:
            ienv = dict(env, TRIDENT_NET=impl)
            itag = "" if impl == "auto" else " [ref]"
            conf = daemon_conf(tmp, model, f'{{ name = "cap"; type = "alsa"; device = "tfile"; '
                               f'rate = {RATE}; channels = 2; format = "S16_LE"; hop = {WIN}; }}')
            msgs, err, rc = run_daemon(binary, conf, ienv, 15,
                                       lambda m: len(windows_of(m, "cap/1")) >= 20)
            ok(f"file-plugin capture{itag}: daemon exits 0 on SIGTERM", rc == 0, f"rc {rc}: {err[-500:]}")
            if impl == "ref":
                ok(f"file-plugin capture{itag}: the daemon runs the reference", "impl ref," in err,
                   err[-300:])
            r = subprocess.run([binary, "--replay", wav, "--model", model, "--hop", str(WIN),
                                "--pace", "fast", "--stdout"], capture_output=True, timeout=120, env=ienv)
            replay = [json.loads(line) for line in r.stdout.splitlines() if line.strip()]
            ok(f"replay of the same recording runs{itag}", r.returncode == 0 and replay,
                   r.stderr.decode(errors="replace")[-300:])
            for ch in (0, 1):
                cap = windows_of(msgs, f"cap/{ch}")
                clean = []
                for m in cap:
                    if m["gap"]:
                        break
                    clean.append(m)
                rep = {m["seq"]: m for m in windows_of(replay, f"rec/{ch}")}
                same = [m for m in clean if m["seq"] in rep
                        and m["logits"] == rep[m["seq"]]["logits"]]
                ok(f"file plugin channel {ch}{itag}: {len(clean)} windows before any gap equal the "
                       f"replay's", len(clean) >= 10 and len(same) == len(clean),
                       f"{len(same)} of {len(clean)} equal")
                if clean:
                    xs = np.stack([x16[m["sample"]:m["sample"] + WIN, ch].astype(np.float32) / 32768.0
                                   for m in clean])
                    gold = harness.torch_logits(rnd, xs)
                    got = np.array([m["logits"] for m in clean])
                    rel = np.abs(got - gold).max() / np.abs(gold).max()
                    ok(f"file plugin channel {ch}{itag}: logits match PyTorch", rel < 1e-4,
                           f"rel {rel:.3g}")

        # 2. Paced: t advances by hop/rate, at the device's rate, no gap.
        hop = 512
        conf = daemon_conf(tmp, model, f'{{ name = "pac"; type = "alsa"; device = "tpaced"; '
                           f'rate = {RATE}; channels = 2; format = "S16_LE"; hop = {hop}; }}')
        t0 = time.monotonic()
        msgs, err, rc = run_daemon(binary, conf, env, 3.0)
        el = time.monotonic() - t0
        w = windows_of(msgs, "pac/0")
        ts = np.array([m["t"] for m in w])
        d = np.diff(ts) - hop / RATE if len(ts) > 1 else np.array([1.0])
        ok("paced capture: daemon exits 0 on SIGTERM", rc == 0, f"rc {rc}: {err[-500:]}")
        ok("paced capture: windows published", len(w) > 30, f"{len(w)} windows; {err[-300:]}")
        ok("paced capture: t advances by hop/rate within 1 ms",
               len(w) > 1 and np.abs(d).max() < 1e-3, f"worst {np.abs(d).max():.6f} s")
        ok("paced capture: no gap", not any(m["gap"] for m in w))
        ok("paced capture: the granted rate, period and buffer are logged at start-up",
               f"alsa 'tpaced': S16_LE, {RATE} Hz, 2 ch, period" in err and "buffer" in err,
               err[-500:])
        # At the device's rate: windows cannot arrive faster than the device
        # makes their samples, so their arrival spans at least the stream
        # time they span (less one window's latency jitter, 60 ms); a busy
        # machine (a TSan build beside other jobs) may publish late, never
        # early, so the other side only has to show no stall (2 s).
        rx = [m for m in w if "_rx" in m]
        span_t = rx[-1]["t"] - rx[0]["t"] if len(rx) > 1 else 0.0
        span_rx = rx[-1]["_rx"] - rx[0]["_rx"] if len(rx) > 1 else 0.0
        tap.note(f"{tag}: paced: {len(rx)} windows span {span_t:.4f} s of stream time, arrived "
                 f"over {span_rx:.4f} s")
        ok("paced capture: windows at the device's rate (they arrive no faster than their t "
           "span, within 60 ms, and without a stall)",
           span_t > 1.5 and span_rx >= span_t - 0.06 and span_rx - span_t < 2.0,
           f"{len(rx)} windows over {span_t:.3f} s of stream time, arrived over "
           f"{span_rx:.3f} s ({el:.2f} s run)")
        now = time.time()
        ok("paced capture: t is Unix time", len(w) and abs(ts[-1] - now) < 5,
               f"last t {ts[-1] if len(w) else 0:.3f}, now {now:.3f}")

        # 3. A forced overrun: a window says gap, capture goes on.
        conf = daemon_conf(tmp, model, f'{{ name = "xr"; type = "alsa"; device = "txrun"; '
                           f'rate = {RATE}; channels = 2; format = "S16_LE"; hop = {hop}; }}',
                           stats=0.5)

        def past_gap(ms):
            # an event, not a time: both channels well past their gap (and
            # a _stats after it), however slow the build and the machine
            for ch in (0, 1):
                w = windows_of(ms, f"xr/{ch}")
                g = [i for i, m in enumerate(w) if m["gap"]]
                if not g or len(w) - g[0] <= 15:
                    return False
            return last_stats(ms, "xr/0").get("xruns") == 1
        msgs, err, rc = run_daemon(binary, conf, env, 90, past_gap)
        ok("overrun: daemon exits 0 on SIGTERM", rc == 0, f"rc {rc}: {err[-500:]}")
        st = last_stats(msgs, "xr/0")
        try:
            with open(lost_file) as f:
                lost = int(f.read())
        except (OSError, ValueError):
            lost = 0
        # The device's own count of the frames it never handed over (a
        # buffer + 50 ms of stall, and the time to notice): the daemon's
        # estimate, from the device's timestamps, must be within one period
        # of it (240 frames, 20 ms; measured: within 1 frame, also under the
        # sanitizers).
        tap.note(f"{tag}: overrun: the device lost {lost} frames, _stats say {st.get('dropped')}")
        ok("overrun: _stats count one xrun and the lost samples (within a period of the "
           "device's count)", st.get("xruns") == 1 and lost > 0.5 * RATE
           and abs(st.get("dropped", 0) - lost) <= RATE // 50, f"device lost {lost}; {st}")
        for ch in (0, 1):
            w = windows_of(msgs, f"xr/{ch}")
            gaps = [i for i, m in enumerate(w) if m["gap"]]
            # Every window that holds the first sample after the loss says
            # gap: 1024 / hop of them, in a row.
            one = one_loss(gaps, hop)
            ok(f"overrun channel {ch}: the {1024 // hop} windows holding the loss flagged gap, "
               "capture goes on", one and len(w) - gaps[0] > 10,
                   f"{len(w)} windows, gaps at {gaps}; {err[-300:]}")
            if len(w) > 2:
                # The device stalls for a buffer (0.5 s by default) + 50 ms.
                jump = float(np.max(np.diff([m["t"] for m in w]))) - hop / RATE
                ok(f"overrun channel {ch}: t jumps by the lost time", 0.3 < jump < 1.5,
                       f"jump {jump:.4f} s")
            if one:
                # Windows that begin before the gap (the gap window too: it
                # is cut after the clock was re-anchored) keep the timeline
                # of the first window.
                pre = w[:gaps[0] + 1]
                off = [m["t"] - pre[0]["t"] - (m["sample"] - pre[0]["sample"]) / RATE
                       for m in pre]
                worst = float(np.max(np.abs(off)))
                ok(f"overrun channel {ch}: windows up to the gap advance by hop/rate from "
                   f"the first (within 1 ms)", len(pre) > 10 and worst < 1e-3,
                   f"{len(pre)} windows, worst {worst:.4f} s")

        # 4. Unplugged for a second, then back: that stream resumes after one
        # gap; the other device's stream never stops.
        conf = daemon_conf(tmp, model,
                           f'{{ name = "u"; type = "alsa"; device = "tunplug"; rate = {RATE}; '
                           f'channels = 2; format = "S16_LE"; hop = {hop}; }},\n'
                           f'{{ name = "o"; type = "alsa"; device = "tother"; rate = {RATE}; '
                           f'channels = 1; format = "S16_LE"; hop = {hop}; }}', stats=0.2)
        notify = harness.NotifySocket(os.path.join(tmp, "notify"))
        t_unplug = [0.0, 0.0]

        def unplug(msgs, t0=time.monotonic()):
            el = time.monotonic() - t0
            if el > 1.0 and not t_unplug[0]:
                open(gone, "w").close()
                t_unplug[0] = time.time()
            if el > 2.0 and t_unplug[0] and not t_unplug[1]:
                os.unlink(gone)
                t_unplug[1] = time.time()
            return False
        msgs, err, rc = run_daemon(binary, conf, dict(env, NOTIFY_SOCKET=notify.path), 4.0,
                                   unplug)
        status = [m for m in notify.messages() if m.startswith("STATUS=")]
        notify.close()
        if os.path.exists(gone):
            os.unlink(gone)
        ok("unplug: daemon exits 0 on SIGTERM", rc == 0, f"rc {rc}: {err[-500:]}")
        # Reported, not silent: _stats, the log and STATUS= say it is down.
        su, so = stats_of(msgs, "u/0"), stats_of(msgs, "o")
        away = [s for t, s in su if t_unplug[0] + 0.3 < t < t_unplug[1]]
        ok("unplug: _stats say down while it is away",
           away and all(s.get("down") is True for s in away),
           f"{len(su)} _stats; while away: {[s.get('down') for s in away]}")
        ok("unplug: _stats say up again afterwards, reopened once",
           su and su[-1][1].get("down") is False and su[-1][1].get("reopens") == 1
           and su[0][1].get("down") is False, f"first {su[:1]}, last {su[-1:]}")
        ok("unplug: the other stream's _stats never say down",
           so and all(s.get("down") is False and s.get("reopens") == 0 for _, s in so),
           f"{[s.get('down') for _, s in so]}")
        ok("unplug: the main loop logs the device gone, then back",
           'stream "u": device "tunplug" is gone' in err
           and 'stream "u": device "tunplug" is back after' in err
           and err.index('is gone') < err.index('is back after'), err[-600:])
        ok("unplug: STATUS= says 2 streams down while away, none once back",
           any("(2 down)" in m for m in status) and status and "down" not in status[-1],
           str(status))
        u, o = windows_of(msgs, "u/0"), windows_of(msgs, "o")
        ug = [i for i, m in enumerate(u) if m["gap"]]
        ok("unplug: the stream comes back after one gap (the windows holding it flagged)",
               one_loss(ug, hop) and len(u) - ug[0] > 10 and u[-1]["t"] > t_unplug[1],
               f"{len(u)} windows, gaps at {ug}; {err[-300:]}")
        if one_loss(ug, hop) and ug[0] > 0:
            # The gap window begins before the gap (on the old timeline):
            # the jump is where the windows begin after it.
            away = float(np.max(np.diff([m["t"] for m in u]))) - hop / RATE
            ok("unplug: t jumps by the time it was away", 0.8 < away < 2.5, f"{away:.3f} s")
        ot = np.array([m["t"] for m in o])
        od = np.diff(ot) - hop / RATE if len(ot) > 1 else np.array([1.0])
        ok("unplug: the other device's stream never stops",
               len(o) > 50 and not any(m["gap"] for m in o) and np.abs(od).max() < 1e-3
               and ot[0] < t_unplug[0] and ot[-1] > t_unplug[1],
               f"{len(o)} windows, worst step {np.abs(od).max():.4f} s")

        # 6. Workers stall for good (the pipeline's test hook) while an
        # unpaced device delivers as fast as it can: the daemon stays up and
        # its memory stays what it was once the rings filled.
        conf = daemon_conf(tmp, model, f'{{ name = "f"; type = "alsa"; device = "tfast"; '
                           f'rate = {RATE}; channels = 2; format = "S16_LE"; hop = {hop}; }}',
                           stats=0.5)
        senv = dict(env, TRIDENT_TEST_STALL_AFTER="4")
        # stdout (4 windows, a few _stats lines) stays within the pipe's buffer
        p = subprocess.Popen([binary, "-c", conf], env=senv, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
        rss = []
        for _ in range(6):
            time.sleep(0.5)
            try:
                with open(f"/proc/{p.pid}/status") as f:
                    rss += [int(line.split()[1]) for line in f if line.startswith("VmRSS:")]
            except OSError:
                break
        alive = p.poll() is None
        p.kill()
        out, err = p.communicate(timeout=20)
        ok("stalled workers: the daemon keeps running", alive and len(rss) == 6,
           err.decode(errors="replace")[-400:])
        msgs = []
        for line in out.splitlines():
            try:
                msgs.append(json.loads(line))
            except ValueError:
                pass
        sf = stats_of(msgs, "f/0")
        ok("stalled workers: the dropped samples are counted (_stats, growing)",
           len(sf) >= 3 and 0 < sf[-3][1].get("dropped", 0) < sf[-1][1].get("dropped", 0),
           f"dropped in the _stats: {[s.get('dropped') for _, s in sf]}")
        tap.note(f"{tag}: stalled workers: VmRSS kB every 0.5 s: {rss}")
        ok("stalled workers: memory bounded", len(rss) == 6 and rss[-1] - rss[1] < 4096,
           f"VmRSS kB over 3 s: {rss}")

        # 5. A device that refuses the configured rate and format: start-up
        # fails, naming the device, what was asked and what it offers.
        conf = daemon_conf(tmp, model, '{ name = "n"; type = "alsa"; device = "tnarrow"; '
                           'rate = 44100; channels = 1; format = "S32_LE"; }')
        msgs, err, rc = run_daemon(binary, conf, env, 10)
        ok("refused parameters: start-up fails", rc not in (0, None), f"rc {rc}")
        ok("refused parameters: the error names the device, what was asked and offered",
               all(k in err for k in ("tnarrow", "S32_LE", "S16_LE", "44100", "8000", "48000")),
               err[-400:])


def main():
    for b in harness.BUILDS:
        check_build(b)
    tap.done()


if __name__ == "__main__":
    main()
