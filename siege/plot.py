"""The pictures of a run, drawn by gnuplot (Debian's gnuplot-nox, installed when missing):
answers per second, successful and failed, and p50/p99 latency over time, for every series of a
scenario or of the report, with the actions taken during it (a SIGTERM) marked.
"""

import shutil
import subprocess

from siege import common
from siege.common import apt_install, per_second, say


def ensure_gnuplot():
    if shutil.which("gnuplot") is None:
        say("installing gnuplot (Debian's gnuplot-nox) for the plots")
        apt_install("gnuplot-nox")


def plot(name, title, series, actions):
    """common.OUT/<name>.png: answers per second (successful and failed) and p50/p99 latency over
    time of each (label, first phase, second phase or None) in `series`, one after the other;
    the SIGTERMs among `actions` ((seconds, what)) marked."""
    ensure_gnuplot()
    work = common.WORK
    work.mkdir(parents=True, exist_ok=True)
    data, offset, blocks = [], 0.0, []
    for label, first, second in series:
        rows = per_second(first["answers"], offset)
        if second:
            rows += per_second(second["answers"], rows[-1]["second"] + 1 if rows else offset)
        blocks.append((label, len(data)))
        data.append(rows)
        offset = (rows[-1]["second"] + 2) if rows else offset
    dat = work / f"{name}.dat"
    with open(dat, "w") as out:
        for rows in data:
            for r in rows:
                out.write(f"{r['second']} {r['ok']} {r['failed']} {r['p50_ms'] or 0:.2f} {r['p99_ms'] or 0:.2f}\n")
            out.write("\n\n")
    marks = "".join(
        f"set arrow from {at:.1f}, graph 0 to {at:.1f}, graph 1 nohead lc rgb '#aaaaaa' dt 2\n"
        f"set label '{what}' at {at:.1f}, graph 0.97 rotate by 90 right font ',7'\n"
        for at, what in actions if what.startswith("SIGTERM") and at <= offset)
    png = common.OUT / f"{name}.png"
    blocks_ok = ", ".join(f"'{dat}' index {i} using 1:2 with lines lw 2 title '{label}: 2xx'"
                          for label, i in blocks)
    blocks_failed = ", ".join(f"'{dat}' index {i} using 1:3 with lines lw 2 dt 3 title '{label}: failed'"
                              for label, i in blocks)
    blocks_lat = ", ".join(
        f"'{dat}' index {i} using 1:4 with lines title '{label}: p50', "
        f"'{dat}' index {i} using 1:5 with lines dt 2 title '{label}: p99'" for label, i in blocks)
    script = f"""\
set terminal pngcairo size 1100,760 font ',9'
set output '{png}'
set multiplot layout 2,1 title "{title}"
set grid
set key outside right
set xlabel 'seconds'
{marks}set ylabel 'answers per second'
plot {blocks_ok}, {blocks_failed}
unset label
set ylabel 'latency (ms, as siege prints it: 10 ms steps)'
plot {blocks_lat}
unset multiplot
"""
    (work / f"{name}.gp").write_text(script)
    subprocess.run(["gnuplot", str(work / f"{name}.gp")], check=True)
    return png

