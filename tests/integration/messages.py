# SPDX-License-Identifier: Apache-2.0
"""messages.py — the docs/DESIGN.md "Messages" contract as one check for every test.

    from messages import check_message
    d = check_message(topic, body, n_classes=4)   # the parsed dict, or AssertionError

Checks each field's presence and JSON type (a float field must be a JSON
real, so 1.0 is not accepted as 1 and integers are never floats), the
relations between them (stream == topic, score == probs[class], probs sum to
1, class in range, label a name) and nothing extra.  The reason in the
AssertionError names the field and shows the message.
"""
import json
import math
import re

FIELDS = ("stream", "seq", "sample", "t", "label", "state", "class", "score", "probs",
          "logits", "quality", "rms", "peak", "crest", "kurtosis", "gap", "latency_us",
          "model")
# Only with a model that has a detector (model/FORMAT.md "Detector").
OPTIONAL = ("anomaly", "threshold")
QUALITIES = ("ok", "no_signal", "clipped", "nonfinite")
_MODEL = re.compile(r"[0-9a-f]{12}")


def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def _is_float(v):
    return isinstance(v, float) and math.isfinite(v)


def check_message(topic_bytes, json_bytes, n_classes=None):
    """Parse and validate one published message; return the dict."""
    def fail(why):
        raise AssertionError(f"bad message ({why}): topic={topic_bytes!r} body={json_bytes[:400]!r}")

    if isinstance(topic_bytes, str):
        topic_bytes = topic_bytes.encode()
    if isinstance(json_bytes, str):
        json_bytes = json_bytes.encode()
    if b"\n" in json_bytes:
        fail("JSON spans several lines")
    try:
        d = json.loads(json_bytes.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        fail(f"not UTF-8 JSON: {e}")
    if not isinstance(d, dict):
        fail("not a JSON object")
    missing = [f for f in FIELDS if f not in d]
    if missing:
        fail(f"missing {', '.join(missing)}")
    extra = [f for f in d if f not in FIELDS + OPTIONAL]
    if extra:
        fail(f"unexpected {', '.join(extra)}")

    if not isinstance(d["stream"], str):
        fail("stream is not a string")
    try:
        topic = topic_bytes.decode("utf-8")
    except UnicodeDecodeError:
        fail("topic is not UTF-8")
    if d["stream"] != topic:
        fail(f"stream {d['stream']!r} != topic {topic!r}")
    for f in ("seq", "sample", "latency_us"):
        if not _is_int(d[f]) or d[f] < 0:
            fail(f"{f} is not an integer >= 0: {d[f]!r}")
    if not _is_float(d["t"]):
        fail(f"t is not a finite JSON real: {d['t']!r}")
    if d["state"] is not None and (not isinstance(d["state"], str) or not d["state"]):
        fail(f"state is neither null nor a non-empty string: {d['state']!r}")
    if d["quality"] not in QUALITIES:
        fail(f"quality {d['quality']!r} is not one of {QUALITIES}")
    if ("anomaly" in d) != ("threshold" in d):
        fail("anomaly and threshold come together")
    if "threshold" in d and not _is_float(d["threshold"]):
        fail(f"threshold is not a real: {d['threshold']!r}")
    if d["quality"] != "ok":
        # A window that is not ok never gets a class (winfeat.h).
        for f in ("label", "class", "score", "probs", "logits"):
            if d[f] is not None:
                fail(f"quality {d['quality']} but {f} is {d[f]!r}, not null")
        if d["quality"] == "nonfinite":
            for f in ("rms", "peak", "crest", "kurtosis"):
                if d[f] is not None:
                    fail(f"nonfinite window with {f} {d[f]!r}")
        return d
    for f in ("rms", "peak", "crest", "kurtosis"):
        if not _is_float(d[f]) or d[f] < 0:
            fail(f"{f} is not a real >= 0: {d[f]!r}")
    if not isinstance(d["label"], str) or not d["label"]:
        fail(f"label is not a non-empty string: {d['label']!r}")
    if "anomaly" in d and not _is_float(d["anomaly"]):
        fail(f"anomaly is not a real: {d['anomaly']!r}")
    if d["probs"] is None and d["label"] in ("normal", "anomaly") and "anomaly" in d:
        # An anomaly model: no network, the label from the score.
        if d["score"] is not None or d["logits"] is not None:
            fail("anomaly model with score or logits")
        if d["class"] != (1 if d["label"] == "anomaly" else 0):
            fail(f"class {d['class']!r} does not match label {d['label']!r}")
        if (d["anomaly"] > d["threshold"]) != (d["label"] == "anomaly"):
            fail("label does not follow anomaly > threshold")
        return d
    if not isinstance(d["gap"], bool):
        fail(f"gap is not a boolean: {d['gap']!r}")
    if not isinstance(d["model"], str) or not _MODEL.fullmatch(d["model"]):
        fail(f"model is not 12 lower-case hex digits: {d['model']!r}")

    probs, logits = d["probs"], d["logits"]
    for f, v in (("probs", probs), ("logits", logits)):
        if not isinstance(v, list) or not v:
            fail(f"{f} is not a non-empty list")
        bad = [x for x in v if not _is_float(x)]
        if bad:
            fail(f"{f} holds non-real values {bad[:3]!r}")
    if len(probs) != len(logits):
        fail(f"{len(probs)} probs but {len(logits)} logits")
    if n_classes is not None and len(probs) != n_classes:
        fail(f"{len(probs)} classes, expected {n_classes}")
    if any(p < 0.0 or p > 1.0 for p in probs):
        fail("a probability outside [0, 1]")
    if abs(sum(probs) - 1.0) > 1e-4:
        fail(f"probs sum to {sum(probs)!r}")
    c = d["class"]
    if not _is_int(c) or not 0 <= c < len(probs):
        fail(f"class {c!r} not an index into {len(probs)} classes")
    if not _is_float(d["score"]) or not 0.0 <= d["score"] <= 1.0:
        fail(f"score is not a real in [0, 1]: {d['score']!r}")
    if d["score"] != probs[c]:
        fail(f"score {d['score']!r} != probs[{c}] {probs[c]!r}")
    # The published class is the arg-max (ties: any of the maxima).
    if probs[c] < max(probs):
        fail(f"class {c} is not the arg-max of probs")
    return d
