"""Checks the monitoring files offline: metrics-dashboards/consort.json (JSON that Grafana can
provision, every metric its queries name declared in the sources, RocksDB ones only in "(opt-in)"
panels), the two Prometheus configurations (YAML, a job name that Besu Full's
job=~".*besu.*|execution.*" filters match, the targets they should scrape), the Grafana
provisioning files under docker/monitoring/ and the "## Not provided" table of
metrics-dashboards/README.md (no name in it is declared in the sources)."""
import glob
import json
import os
import re
import sys

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# What the process collector and the registry itself export, beside the declared metrics.
PROCESS = {"process_cpu_seconds_total", "process_open_fds", "process_max_fds",
           "process_virtual_memory_bytes", "process_resident_memory_bytes",
           "process_start_time_seconds", "process_threads", "process_release"}
PREFIXES = ("besu_", "ethereum_", "consort_", "process_", "rocksdb_", "jvm_", "node_", "guava_")
OPT_IN = ("besu_rocksdb_", "rocksdb_")
BESU_FULL_JOB = re.compile(r"^(?:.*besu.*|execution.*)$")
KEYWORDS = {"by", "on", "or", "and", "unless", "without", "ignoring", "group_left",
            "group_right", "bool", "offset"}


EXECUTOR_SUFFIXES = (
    "pool_size_current",
    "queue_length_current",
    "active_threads_current",
    "submitted_tasks_total",
    "completed_tasks_total",
    "rejected_tasks_total",
)


def declared_metrics():
    """Metric names declared in the Rust sources (`field: Kind = "name"`)."""
    names = set()
    for path in glob.glob(os.path.join(ROOT, "crates", "**", "src", "**", "*.rs"), recursive=True) + \
            glob.glob(os.path.join(ROOT, "bin", "**", "src", "**", "*.rs"), recursive=True):
        with open(path, encoding="utf-8") as f:
            text = f.read()
        names.update(re.findall(r'=\s*"((?:%s)[a-z0-9_]+)"' % "|".join(PREFIXES), text, re.I))
        # An `Executor` is declared by its prefix and exports six families under it.
        for prefix in re.findall(r':\s*Executor\s*=\s*"([a-z0-9_]+)"', text):
            names.update(prefix + "_" + suffix for suffix in EXECUTOR_SUFFIXES)
        if "rocksdb::statistics" in text:
            # RocksDB's statistics are named at run time from their tickers and histograms.
            for variant in re.findall(r"\b(?:Ticker|Histogram)::([A-Z]\w*)", text):
                names.add("rocksdb_" + re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", variant).lower())
    return names | PROCESS


def metric_names(expr):
    """The metric names a PromQL expression reads."""
    e = re.sub(r'"[^"]*"|\'[^\']*\'', "", expr)
    e = re.sub(r"\{[^}]*\}", "", e)
    e = re.sub(r"\[[^\]]*\]", "", e)
    e = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", e)
    out = set()
    for m in re.finditer(r"(?<![\w.$])([a-zA-Z_:][a-zA-Z0-9_:]*)(\s*\()?", e):
        name, call = m.group(1), m.group(2)
        if call or name in KEYWORDS:
            continue
        out.add(name)
    return out


def known(name, declared):
    if name in declared:
        return True
    base = re.sub(r"_(bucket|sum|count)$", "", name)
    return base in declared


def panels(items):
    for p in items:
        yield p
        yield from panels(p.get("panels", []))


def check_dashboard(errors, declared):
    path = os.path.join(ROOT, "metrics-dashboards", "consort.json")
    with open(path, encoding="utf-8") as f:
        dash = json.load(f)
    variables = {v["name"]: v for v in dash.get("templating", {}).get("list", [])}
    inst = variables.get("instance")
    if not inst or "label_values(ethereum_blockchain_height, instance)" not in str(inst.get("query")):
        errors.append(f"{path}: no instance variable from label_values(ethereum_blockchain_height, instance)")
    if not any(v.get("type") == "datasource" and v.get("query") == "prometheus" for v in variables.values()):
        errors.append(f"{path}: no Prometheus datasource variable")
    ids = set()
    queried = set()
    for p in panels(dash.get("panels", [])):
        if p.get("id") in ids:
            errors.append(f"{path}: panel id {p.get('id')} is used twice")
        ids.add(p.get("id"))
        if p.get("type") == "row":
            continue
        title = p.get("title", "")
        targets = p.get("targets") or []
        if not targets:
            errors.append(f"{path}: panel {title!r} has no query")
        for t in targets:
            expr = t.get("expr", "")
            for name in metric_names(expr):
                queried.add(name)
                if name.startswith(OPT_IN):
                    if "(opt-in)" not in title:
                        errors.append(f"{path}: {title!r} reads the opt-in {name} but is not marked (opt-in)")
                if not known(name, declared):
                    errors.append(f"{path}: {title!r} reads {name}, which no source declares")
        if "(opt-in)" in title and not any(n.startswith(OPT_IN) for t in targets
                                           for n in metric_names(t.get("expr", ""))):
            errors.append(f"{path}: {title!r} is marked (opt-in) but reads no RocksDB metric")
    return queried


def load_yaml(errors, path):
    try:
        with open(path, encoding="utf-8") as f:
            return yaml.safe_load(f) or {}
    except (OSError, yaml.YAMLError) as e:
        errors.append(f"{path}: {e}")
        return {}


def scrape_targets(errors, path, want):
    doc = load_yaml(errors, path)
    jobs = doc.get("scrape_configs") or []
    if not jobs:
        errors.append(f"{path}: no scrape_configs")
    targets = set()
    for job in jobs:
        if not BESU_FULL_JOB.match(job.get("job_name", "")):
            errors.append(f"{path}: job {job.get('job_name')!r} does not match Besu Full's "
                          'job=~".*besu.*|execution.*"')
        for sc in job.get("static_configs") or []:
            targets.update(sc.get("targets") or [])
    if targets != want:
        errors.append(f"{path}: scrapes {sorted(targets)}, expected {sorted(want)}")
    return doc


def check_prometheus(errors):
    path = os.path.join(ROOT, "metrics-dashboards", "prometheus.yml")
    doc = scrape_targets(errors, path, {f"127.0.0.1:{p}" for p in range(9545, 9549)})
    if (doc.get("global") or {}).get("scrape_interval") != "5s":
        errors.append(f"{path}: global scrape_interval is not 5s")

    compose_path = os.path.join(ROOT, "docker", "compose.yml")
    compose = load_yaml(errors, compose_path)
    services = compose.get("services") or {}
    nodes = {name for name, svc in services.items()
             if "CONSORT_METRICS_ENABLED" in (svc.get("environment") or {})}
    for name in nodes:
        env = services[name].get("environment") or {}
        if str(env.get("CONSORT_METRICS_HOST")) != "0.0.0.0":
            errors.append(f"{compose_path}: {name} metrics do not listen on 0.0.0.0")
        allow = str(env.get("CONSORT_HOST_ALLOWLIST", "localhost,127.0.0.1")).split(",")
        if "*" not in allow and "all" not in allow and name not in allow:
            errors.append(f"{compose_path}: {name}'s --host-allowlist refuses Host {name}:9545 (403)")
    scrape_targets(errors, os.path.join(ROOT, "docker", "monitoring", "prometheus.yml"),
                   {f"{n}:9545" for n in nodes})

    grafana = services.get("grafana") or {}
    mounts = [str(v).split(":") for v in grafana.get("volumes") or []]
    dashboard_dir = next((os.path.dirname(m[1]) for m in mounts
                          if len(m) >= 2 and m[0].endswith("metrics-dashboards/consort.json")), None)
    if not dashboard_dir:
        errors.append(f"{compose_path}: grafana does not mount metrics-dashboards/consort.json")
    elif not any(m[-1] == "ro" for m in mounts if m[0].endswith("consort.json")):
        errors.append(f"{compose_path}: grafana mounts consort.json writable")
    providers = load_yaml(errors, os.path.join(ROOT, "docker", "monitoring", "grafana", "dashboards.yml"))
    paths = [(p.get("options") or {}).get("path") for p in providers.get("providers") or []]
    if dashboard_dir and dashboard_dir not in paths:
        errors.append(f"docker/monitoring/grafana/dashboards.yml: no provider reads {dashboard_dir}")
    sources = load_yaml(errors, os.path.join(ROOT, "docker", "monitoring", "grafana", "datasources.yml"))
    if not any(d.get("type") == "prometheus" for d in sources.get("datasources") or []):
        errors.append("docker/monitoring/grafana/datasources.yml: no Prometheus datasource")


def check_not_provided(errors, declared):
    path = os.path.join(ROOT, "metrics-dashboards", "README.md")
    with open(path, encoding="utf-8") as f:
        text = f.read()
    m = re.search(r"^## Not provided\n(.*?)(?=^## |\Z)", text, re.M | re.S)
    if not m:
        errors.append(f"{path}: no '## Not provided' section")
        return
    rows = [line for line in m.group(1).splitlines() if line.startswith("| `")]
    if not rows:
        errors.append(f"{path}: the Not provided table has no rows")
    for line in rows:
        name = re.match(r"\| `([^`]+)`", line).group(1)
        if known(name, declared):
            errors.append(f"{path}: {name} is listed as not provided but the sources declare it")


def main():
    errors = []
    declared = declared_metrics()
    check_dashboard(errors, declared)
    check_prometheus(errors)
    check_not_provided(errors, declared)
    for e in errors:
        print(e, file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
