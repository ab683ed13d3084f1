"""Parse Prometheus text files with prometheus_client's parser and check them.

usage: metrics_check.py FILE [FILE...] [--expect-json STATUS.json] [--no-help]
Each FILE must parse, every family must have HELP and a type, no value may be NaN or
infinite, ratios stay in 0..1. With --expect-json, the values are compared to a status
report (the JSON of `uplinkd status --json`) taken at the same moment.
"""
import json
import math
import sys

from prometheus_client.parser import text_string_to_metric_families

EXPECTED = {
    "uplinkd_wan_up": "gauge",
    "uplinkd_wan_state": "gauge",
    "uplinkd_wan_state_age_seconds": "gauge",
    "uplinkd_wan_weight": "gauge",
    "uplinkd_flow_share": "gauge",
    "uplinkd_transitions": "counter",
    "uplinkd_probe_rtt_seconds": "gauge",
    "uplinkd_probe_loss_ratio": "gauge",
    "uplinkd_probe_answered": "gauge",
    "uplinkd_probes_sent": "counter",
    "uplinkd_probes_lost": "counter",
    "uplinkd_quota_used_bytes": "gauge",
    "uplinkd_quota_bytes": "gauge",
}
STATES = ["up", "degraded", "down", "held", "no-carrier", "disabled"]


def parse(path, need_help=True):
    with open(path, encoding="utf-8") as f:
        text = f.read()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    for name, kind in EXPECTED.items():
        assert name in families, f"{path}: no family {name}"
        fam = families[name]
        assert fam.type == kind, f"{path}: {name} is {fam.type}, not {kind}"
        assert fam.documentation or not need_help, f"{path}: {name} has no HELP"
    samples = {}
    for fam in families.values():
        for s in fam.samples:
            assert not math.isnan(s.value) and not math.isinf(s.value), s
            if fam.name in ("uplinkd_flow_share", "uplinkd_probe_loss_ratio"):
                assert 0 <= s.value <= 1, s
            if fam.name in ("uplinkd_wan_up", "uplinkd_wan_state"):
                assert s.value in (0, 1), s
            key = (s.name, tuple(sorted(s.labels.items())))
            assert key not in samples, f"{path}: duplicate series {key}"
            samples[key] = s.value
    # Exactly one state per WAN.
    wans = {dict(k[1])["wan"] for k in samples if k[0] == "uplinkd_wan_state"}
    for w in wans:
        on = [dict(k[1])["state"] for k, v in samples.items()
              if k[0] == "uplinkd_wan_state" and dict(k[1])["wan"] == w and v == 1]
        assert len(on) == 1, f"{path}: WAN {w!r} in states {on}"
    return samples


def get(samples, name, **labels):
    return samples.get((name, tuple(sorted(labels.items()))))


def compare(samples, status):
    checked = 0
    for wan, w in status["interfaces"].items():
        assert get(samples, "uplinkd_wan_state", wan=wan, state=w["state"]) == 1, wan
        assert get(samples, "uplinkd_wan_up", wan=wan) == (w["state"] in ("up", "degraded"))
        if "weight" in w:
            assert get(samples, "uplinkd_wan_weight", wan=wan) == w["weight"]
        for policy, pct in w["share"].items():
            got = get(samples, "uplinkd_flow_share", wan=wan, policy=policy)
            assert abs(got - pct / 100) < 1e-9, (wan, policy, got, pct)
        for to, n in w["transitions"].items():
            got = get(samples, "uplinkd_transitions_total", wan=wan, to=to)
            assert got == n, (wan, to, got, n)
        q = w.get("quota")
        assert get(samples, "uplinkd_quota_used_bytes", wan=wan) == (q and q["used"]), wan
        assert get(samples, "uplinkd_quota_bytes", wan=wan) == (q and q["bytes"]), wan
        for direction, n in w.get("probe_bytes", {}).items():
            got = get(samples, "uplinkd_probe_bytes_total", wan=wan, direction=direction)
            assert got == n, (wan, direction, got, n)
        if "probe_monthly_bytes" in w:
            got = get(samples, "uplinkd_probe_monthly_bytes", wan=wan)
            assert got == w["probe_monthly_bytes"], (wan, got)
        if "standby" in w:
            assert get(samples, "uplinkd_wan_standby", wan=wan) == int(w["standby"]), wan
        for t in w["targets"]:
            ip = t["ip"]
            k = {"wan": wan, "target": ip}
            if "method" in t:
                k["method"] = t["method"]
            assert get(samples, "uplinkd_probes_sent_total", **k) == t["sent"]
            assert get(samples, "uplinkd_probes_lost_total", **k) == t["lost"]
            answered = get(samples, "uplinkd_probe_answered", **k)
            if "answered" in t:
                assert answered == t["answered"], (wan, ip, answered, t)
            else:
                assert answered is None, (wan, ip, answered)
            rtt = get(samples, "uplinkd_probe_rtt_seconds", **k)
            if "mean_rtt_ms" in t:
                assert abs(rtt - t["mean_rtt_ms"] / 1000) < 1e-9, (wan, ip, rtt, t)
            else:
                assert rtt is None, (wan, ip, rtt)
            checked += 1
    for policy, p in status.get("policies", {}).items():
        for wan, weight in p.get("weights", {}).items():
            got = get(samples, "uplinkd_policy_weight", policy=policy, wan=wan)
            assert got == weight, (policy, wan, got, weight)
    return checked


def main(argv):
    expect = None
    need_help = "--no-help" not in argv
    argv = [a for a in argv if a != "--no-help"]
    if "--expect-json" in argv:
        i = argv.index("--expect-json")
        with open(argv[i + 1], encoding="utf-8") as f:
            expect = json.load(f)
        argv = argv[:i] + argv[i + 2:]
    for path in argv:
        samples = parse(path, need_help)
        print(f"metrics: {path.rsplit('/', 1)[-1]}: {len(samples)} series parse")
        if expect is not None:
            n = compare(samples, expect)
            print(f"metrics: values match the status report ({n} targets)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
