# SPDX-License-Identifier: Apache-2.0
"""test_doc_examples.py — the pump example in README and trident.conf(5) is a config tridentd accepts.

README "A pump, with all of it" and trident.conf(5) EXAMPLE show the same
config (issue 17: a pump-monitoring config with all of it).  Both are cut out
of the documents, checked to be the same text, their /var/lib/trident paths
and model pointed into a temporary folder (the model: the shipped one), and
run through `tridentd --check` of every build: exit 0, and --check reports
the recording and keep folders and the stream as configured.  A document
that drifts from the config keys fails here.
"""
import os
import re
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402

T = harness.Tap()
TMP = harness.tmpdir("trident-doc-")
ROOT = harness.ROOT
MODEL = os.path.join(ROOT, "model", "cwru.safetensors")


def readme_pump():
    with open(os.path.join(ROOT, "README.md")) as f:
        s = f.read()
    m = re.search(r"^## A pump, with all of it\n.*?^```\n(.*?)^```", s, re.S | re.M)
    return m.group(1) if m else None


def man_pump():
    with open(os.path.join(ROOT, "packaging", "trident.conf.5")) as f:
        s = f.read()
    m = re.search(r"^A pump with all of it.*?^\.nf\n(.*?)^\.fi", s, re.S | re.M)
    return m.group(1).replace("\\-", "-").replace("\\\\", "\\") if m else None


doc, man = readme_pump(), man_pump()
T.ok("README has the pump example", doc is not None)
T.ok("trident.conf(5) has the same pump example", man is not None and man == doc,
     "they differ" if man and doc else "")
if doc:
    T.ok("the example switches on all of it",
         all(k in doc for k in ("signal_floor", "smooth", "severity", "record", "keep",
                                "model", "stats_interval")))
    conf = os.path.join(TMP, "pump.conf")
    text = re.sub(r'model = "[^"]*"', f'model = "{MODEL}"', doc).replace("/var/lib/trident", TMP)
    with open(conf, "w") as f:
        f.write(text)
    for build in os.environ.get("TRIDENT_BUILDS", "build").split():
        tag = os.path.basename(build)
        for d in ("rec", "keep"):
            shutil.rmtree(os.path.join(TMP, d), ignore_errors=True)
        r = subprocess.run([harness.binpath("tridentd", build), "--check", "-c", conf],
                           capture_output=True, text=True, timeout=120)
        out = r.stdout + r.stderr
        T.ok(f"{tag}: tridentd --check accepts it (exit 0)", r.returncode == 0,
             f"rc {r.returncode}: {out[-400:]}")
        T.ok(f"{tag}: --check reports the stream, its recordings and kept windows",
             "pump: alsa hw:1,0, 12000 Hz, 1 ch S16_LE" in out
             and f"records into {TMP}/rec" in out and f"keeps windows into {TMP}/keep" in out,
             out[-400:])
        T.ok(f"{tag}: no sanitizer report", not harness.sanitizer_report(r.stderr), r.stderr[-300:])
T.done()
