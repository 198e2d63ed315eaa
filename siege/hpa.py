"""The hpa scenario's timeline, verdict and plot (siege/run hpa drives the cluster, siege.cluster;
this module only reads what it recorded, so it can be checked without a cluster: `python3 -m
siege.hpa --self-test` runs on siege/hpa-sample.json, a timeline in kubectl's shape written by
hand).

A timeline is a list of samples, one every few seconds while the load runs:
  {"t": seconds since the load started, "hpa": {name: {"min", "max", "current", "desired",
   "cpu_percent"}}}
made from `kubectl get hpa -o json` by sample(). The verdict: every autoscaler that must scale
has wanted more replicas than its minimum (status.desiredReplicas above spec.minReplicas) at
some sample.
"""

import json
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def sample(hpa_list, t):
    """One sample of the timeline from `kubectl get hpa -o json` (an autoscaling/v2 List)."""
    hpas = {}
    for item in hpa_list.get("items", []):
        spec, status = item.get("spec", {}), item.get("status", {})
        cpu = None
        for metric in status.get("currentMetrics") or []:
            resource = metric.get("resource") or {}
            if resource.get("name") == "cpu":
                cpu = resource.get("current", {}).get("averageUtilization")
        hpas[item["metadata"]["name"]] = {
            "min": spec.get("minReplicas", 1),
            "max": spec.get("maxReplicas"),
            "current": status.get("currentReplicas", 0),
            "desired": status.get("desiredReplicas", 0),
            "cpu_percent": cpu,
        }
    return {"t": round(t, 1), "hpa": hpas}


def verdict(timeline, must_scale, load_stopped_s=None):
    """Per autoscaler: its minimum, the most replicas it wanted and had, when it first wanted
    more than its minimum; and whether every one of must_scale did. With load_stopped_s (the
    timeline goes on after the load), also when each was back at its minimum (desired and
    current), which every one of must_scale must be."""
    per = {}
    for point in timeline:
        for name, h in point["hpa"].items():
            v = per.setdefault(name, {"min": h["min"], "max": h["max"], "peak_desired": 0, "peak_current": 0,
                                      "peak_cpu_percent": None, "first_above_min_s": None})
            v["peak_desired"] = max(v["peak_desired"], h["desired"] or 0)
            v["peak_current"] = max(v["peak_current"], h["current"] or 0)
            if h.get("cpu_percent") is not None:
                v["peak_cpu_percent"] = max(v["peak_cpu_percent"] or 0, h["cpu_percent"])
            if (h["desired"] or 0) > h["min"] and v["first_above_min_s"] is None:
                v["first_above_min_s"] = point["t"]
            if load_stopped_s is not None:
                v.setdefault("back_to_min_s", None)
                at_min = h["desired"] == h["min"] and h["current"] == h["min"]
                if point["t"] < load_stopped_s or not at_min:
                    v["back_to_min_s"] = None
                elif v["back_to_min_s"] is None and v["first_above_min_s"] is not None:
                    v["back_to_min_s"] = point["t"]
    grew = [name for name in must_scale if per.get(name, {}).get("first_above_min_s") is not None]
    broken = [f"{name}: no such autoscaler" if name not in per else
              f"{name}: desiredReplicas never above minReplicas ({per[name]['min']}); "
              f"peak CPU {per[name]['peak_cpu_percent']} % of its request"
              for name in must_scale if name not in grew]
    if load_stopped_s is not None:
        broken += [f"{name}: not back at its minimum ({per[name]['min']}) after the load"
                   for name in grew if per[name]["back_to_min_s"] is None]
    return {"autoscalers": per, "must_scale": list(must_scale), "grew": grew, "broken": broken,
            "promise_kept": not broken}


def all_grew(timeline, must_scale):
    return verdict(timeline, must_scale)["promise_kept"]


def plot(timeline, png, title, work, load_stopped_s=None):
    """PNG: desired (solid) and current (dashed) replicas of each autoscaler over time, and each
    one's CPU (a gap where the metrics API had no figure), with gnuplot as the other scenarios'
    plots; a dotted line where the load stopped. Returns the PNG's path, or None without gnuplot
    (the data and script are written anyway)."""
    work.mkdir(parents=True, exist_ok=True)
    names = sorted({name for point in timeline for name in point["hpa"]})
    dat = work / f"{png.stem}.dat"
    with open(dat, "w") as out:
        for name in names:
            out.write(f"# {name}\n")
            for point in timeline:
                h = point["hpa"].get(name)
                if h:
                    cpu = "?" if h["cpu_percent"] is None else h["cpu_percent"]
                    out.write(f"{point['t']} {h['desired']} {h['current']} {cpu}\n")
            out.write("\n\n")
    lines = ", ".join(
        f"'{dat}' index {i} using 1:2 with steps lw 2 lc {i + 1} title '{name} desired', "
        f"'{dat}' index {i} using 1:3 with steps dt 2 lc {i + 1} title '{name} current'"
        for i, name in enumerate(names))
    cpu = ", ".join(f"'{dat}' index {i} using 1:4 with lines lc {i + 1} title '{name}'"
                    for i, name in enumerate(names))
    stopped = "" if load_stopped_s is None else (
        f"set arrow from {load_stopped_s}, graph 0 to {load_stopped_s}, graph 1 nohead dt 3 lc rgb 'black'\n"
        f"set label 'load stopped' at {load_stopped_s}, graph 0.95 offset 0.5, 0")
    script = f"""\
set terminal pngcairo size 1100,760 font ',9'
set output '{png}'
set multiplot layout 2,1 title "{title}"
set grid
set datafile missing '?'
set key outside right
{stopped}
set xlabel 'seconds since the load started'
set ylabel 'replicas'
set yrange [0:*]
set offsets 0, 0, 0.5, 0
plot {lines}
set offsets 0, 0, 20, 0
set ylabel 'CPU, % of the request (the HPA target: 70)'
plot {cpu}
unset multiplot
"""
    gp = work / f"{png.stem}.gp"
    gp.write_text(script)
    if shutil.which("gnuplot") is None:
        return None
    png.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["gnuplot", str(gp)], check=True)
    return png


def self_test():
    """The verdict and the plot on the sample, and on copies broken on purpose."""
    import copy
    import tempfile

    recorded = json.loads((HERE / "hpa-sample.json").read_text())
    must = recorded["must_scale"]
    timeline = [sample(s["kubectl_get_hpa"], s["t"]) for s in recorded["samples"]]
    failures = []
    good = verdict(timeline, must)
    if not good["promise_kept"]:
        failures.append(f"the sample, where every autoscaler grew, was judged broken: {good['broken']}")
    if good["autoscalers"]["rental"]["first_above_min_s"] != recorded["expect_rental_first_above_min_s"]:
        failures.append(f"rental first grew at {good['autoscalers']['rental']['first_above_min_s']} s, "
                        f"the sample says {recorded['expect_rental_first_above_min_s']} s")
    # payment never above its minimum: must be judged broken, naming payment.
    flat = copy.deepcopy(timeline)
    for point in flat:
        point["hpa"]["payment"]["desired"] = point["hpa"]["payment"]["min"]
    bad = verdict(flat, must)
    if bad["promise_kept"] or not any(b.startswith("payment:") for b in bad["broken"]):
        failures.append(f"a timeline where payment never grew passed: {bad}")
    # An autoscaler missing altogether (renamed, not applied): broken too.
    gone = [{"t": p["t"], "hpa": {n: h for n, h in p["hpa"].items() if n != "gateway"}} for p in timeline]
    if verdict(gone, must)["promise_kept"]:
        failures.append("a timeline without the gateway's autoscaler passed")
    # Scaling in: the sample ends with every autoscaler back at its minimum; a copy whose rental
    # stays above it must be judged broken.
    stopped = recorded["load_stopped_s"]
    back = verdict(timeline, must, stopped)
    if not back["promise_kept"]:
        failures.append(f"the sample, back at its minima after the load, was judged broken: {back['broken']}")
    stuck = copy.deepcopy(timeline)
    for point in stuck:
        if point["t"] >= stopped:
            point["hpa"]["rental"]["current"] = point["hpa"]["rental"]["min"] + 1
    if verdict(stuck, must, stopped)["promise_kept"]:
        failures.append("a timeline where rental stayed scaled out after the load passed")
    with tempfile.TemporaryDirectory() as tmp:
        png = plot(timeline, Path(tmp) / "hpa.png", "hpa self-test", Path(tmp))
        if not (Path(tmp) / "hpa.gp").exists() or (png is not None and not png.exists()):
            failures.append("the plot was not written")
    for failure in failures:
        print(f"hpa self-test: FAILED: {failure}", file=sys.stderr)
    if not failures:
        print(f"hpa self-test: verdict and plot right on the sample ({len(timeline)} samples) "
              f"and on three broken copies", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    if sys.argv[1:] != ["--self-test"]:
        raise SystemExit("usage: python3 -m siege.hpa --self-test")
    sys.exit(self_test())
