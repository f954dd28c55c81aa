# SPDX-License-Identifier: Apache-2.0
"""test_daemon_config.py — tridentd's configuration-file mode at the edges.

Every class of configuration error — syntax, unknown key, wrong type, out of
range, a key of the other stream type, a missing required key, a duplicate
stream name, a stream file that is missing, not audio or too short, a bad
model — makes both `tridentd --check -c FILE` and `tridentd -c FILE` exit 78
with one error line that starts "FILE:LINE:" at the right line.  Usage errors
exit 64.  --check on a good file (a file stream and an ALSA stream, whose
device it does not open) exits 0 and prints the streams.
"""
import os
import subprocess
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402

T = harness.Tap()
EXE = harness.binpath("tridentd")
TMP = harness.tmpdir("trident-cfg-")
MODEL = os.path.join(harness.ROOT, "model", "cwru.safetensors")
WAV = os.path.join(TMP, "rec.wav")
SHORT = os.path.join(TMP, "short.wav")
harness.write_wav(WAV, (0.1 * np.random.default_rng(3).standard_normal(12000)).astype(np.float32),
                  12000)
harness.write_wav(SHORT, np.zeros(1000, np.float32), 12000)
NOTAUDIO = os.path.join(TMP, "notes.txt")
with open(NOTAUDIO, "w") as f:
    f.write("not audio\n")
CORRUPT = os.path.join(TMP, "bad.safetensors")
with open(CORRUPT, "wb") as f:
    f.write(b"\x04\x00\x00\x00\x00\x00\x00\x00{}xx")


def run(*args, timeout=60):
    r = subprocess.run([EXE, *args], capture_output=True, text=True, timeout=timeout)
    return r.returncode, r.stdout, r.stderr


def conf(name, lines):
    path = os.path.join(TMP, name + ".conf")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path


HEAD = [f'model = "{MODEL}";', 'publish = { endpoints = [ "ipc://' + TMP + '/x.ipc" ]; };']


def stream(extra):
    return f'  {{ name = "s"; type = "file"; path = "{WAV}"; {extra} }}'


# (name, lines, line the error is on, a word the message must have)
CASES = [
    ("syntax", HEAD + ["workers = ;"], 3, "syntax"),
    ("unknown key", HEAD + ["wrokers = 2;"], 3, "wrokers"),
    ("wrong type", HEAD + ['workers = "two";'], 3, "workers"),
    ("float for an integer", HEAD + ["workers = 1.5;"], 3, "workers"),
    ("out of range", HEAD + ["workers = 100000;"], 3, "workers"),
    ("key of the other stream type", HEAD + ["streams = (", stream("rate = 8000;"), ");"], 4, "rate"),
    ("missing stream type", HEAD + ["streams = (", f'  {{ name = "s"; path = "{WAV}"; }}', ");"],
     4, "type"),
    ("unknown pace", HEAD + ["streams = (", stream('pace = "slow";'), ");"], 4, "pace"),
    ("duplicate stream name", HEAD + ["streams = (", stream("") + ",", stream(""), ");"], 5, "s"),
    ("missing stream file", HEAD + ["streams = (", f'  {{ name = "s"; type = "file"; '
                                    f'path = "{TMP}/nope.wav"; }}', ");"], 4, "nope.wav"),
    ("stream file not audio", HEAD + ["streams = (", f'  {{ name = "s"; type = "file"; '
                                      f'path = "{NOTAUDIO}"; }}', ");"], 4, "notes.txt"),
    ("stream file too short", HEAD + ["streams = (", f'  {{ name = "s"; type = "file"; '
                                      f'path = "{SHORT}"; }}', ");"], 4, "too short"),
    ("missing model", ['workers = 1;', f'model = "{TMP}/none.safetensors";'], 2, "none.safetensors"),
    ("corrupt model", ['workers = 1;', f'model = "{CORRUPT}";'], 2, "bad.safetensors"),
]


def main():
    for name, lines, line, word in CASES:
        path = conf(name.replace(" ", "_"), lines)
        for mode in (["--check", "-c", path], ["-c", path]):
            rc, out, err = run(*mode, timeout=30)
            errs = [ln for ln in err.splitlines() if ": error: " in ln]
            T.ok(f"{name}: {mode[0]} exits 78 with one line {os.path.basename(path)}:{line}:",
                 rc == 78 and len(errs) == 1 and f"{path}:{line}:" in errs[0] and word in errs[0],
                 f"rc={rc} {err.strip()[-300:]}")

    rc, _, err = run("-c", os.path.join(TMP, "missing.conf"))
    T.ok("a missing configuration file: 78 naming it", rc == 78 and "missing.conf" in err, err)

    good = conf("good", HEAD + ["workers = 1;", "streams = (", stream('pace = "fast";') + ",",
                               '  { name = "mic"; type = "alsa"; device = "hw:7,0"; rate = 48000;'
                               ' channels = 2; format = "S16_LE"; }', ");"])
    rc, out, err = run("--check", "-c", good)
    T.ok("--check on a good file: exit 0", rc == 0, f"rc={rc} {err.strip()[-300:]}")
    T.ok("--check prints the streams, the model and the file's format",
         "s: file" in out and "mic: alsa" in out and "sha256" in out and "12000 Hz" in out
         and "configuration OK" in out, out)
    T.ok("--check does not open ALSA devices (and says so)", "not opened" in out and "hw:7,0" in out,
         out)
    rc, out, err = run("--check", "-c", good, "--model", CORRUPT)
    T.ok("--check: --model overrides the file (and is named when bad)",
         rc == 78 and "--model" in err and "bad.safetensors" in err, f"rc={rc} {err}")

    for args, why in ((["--bogus"], "unknown option"), (["-c"], "missing argument"),
                      (["--workers", "257", "-c", good], "--workers 257"),
                      (["--check", "--replay", WAV], "--check with --replay"),
                      (["-c", good, "--replay", WAV], "-c with --replay"),
                      (["-c", good, "--hop", "256"], "--hop without --replay"),
                      (["-c", good, "stray"], "a stray argument")):
        rc, _, err = run(*args)
        T.ok(f"usage error ({why}): exit 64 with a message", rc == 64 and "error" in err,
             f"rc={rc} {err.strip()[-200:]}")
    # --workers 0 is documented as "one per online CPU", on the command line too
    ncpu = os.sysconf("SC_NPROCESSORS_ONLN")
    rc, out, err = run("--replay", WAV, "--workers", "0", "--stdout", "--stats-interval", "0",
                       "--endpoint", f"ipc://{TMP}/w0.ipc", "--model", MODEL)
    T.ok(f"--workers 0: one worker per online CPU ({ncpu})",
         rc == 0 and f"info: {ncpu} workers" in err
         and sum('"label"' in ln for ln in out.splitlines()) == 11,
         f"rc={rc} {err.strip()[-300:]}")
    rc, out, err = run("--check", "-c", good, "--workers", "0")
    T.ok("--check -c FILE --workers 0: exit 0, one per online CPU",
         rc == 0 and "one per online CPU" in out, f"rc={rc} {err.strip()[-200:]}")
    rc, out, _ = run("--help")
    T.ok("--help: the config keys and the exit codes", rc == 0 and "streams[].path" in out
         and "78" in out and "SIGHUP" in out)


main()
T.done()
