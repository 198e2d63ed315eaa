"""Load scenarios against the fleet, the benchmark report, and the load the siege pod runs in a
cluster (siege/README.md).

`siege/run <scenario>` (the runner, `siege.runner`) is the entry point. The modules, each for one
concern: `api` the gateway's public API as a client (the runner, `scripts/journey.py` and the
in-cluster load share it); `fleet` the local fleet that `scripts/dev.sh` runs; `workload` siege
itself and the rent → return workloads; `plot` the gnuplot pictures; `report` the benchmark
report, with `ceilings` (the same database work as bare SQL with pgbench) and `statements` (what
the fleet ran, captured from PostgreSQL); `abuse`, `cluster`, `hpa` and `cpu_profile` for their
scenarios; `cluster_load` the program the siege pod runs. Python's standard library only.
"""
