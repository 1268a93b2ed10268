#!/usr/bin/env python3
"""The node figures of `make bench`: consort against anvil on this machine, in one run.

For each consort build (release, and debug, the one `make run` uses) and for anvil, with the
same load generator (consort-bench) and the same chain settings (1 s blocks, 1 Ggas blocks):

- start to RPC ready (three fresh starts) and resident memory idle and at its peak under load;
- single-node inclusion of ETH transfers, ERC-20 transfers and Caliper's "simple" `open`,
  three runs each, and their median;
- JSON-RPC reads at concurrency 1, 16 and 64: eth_blockNumber, eth_getBalance, eth_call and,
  on a chain of 20 ms blocks past height 1,000, eth_getLogs over the last 1,000 blocks;
- for consort, four validators on this machine with sustained ERC-20 load for a minute, and a
  fresh node syncing a chain of 10,000 blocks with transactions.

It writes the figures between the `make bench` markers of BENCHMARKS.md, and all of them as
JSON to $CARGO_TARGET_DIR/bench/results.json. It measures and never asserts.
"""

import datetime
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET = Path(os.environ.get("CARGO_TARGET_DIR", Path.home() / ".cache/consort-target"))
TOOLS = Path.home() / ".cache/consort-tools"
ANVIL_VERSION = "1.7.1"
ANVIL = TOOLS / "anvil/node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil"
# The dev chain's funded key (chainspecs/dev.json, genesis/qbft-4) and anvil's first account.
DEV_KEY = "8f2a55949038a9610f50fb23b5883af3b4ecb3c3bb792cbcefbd1542c692be63"
ANVIL_KEY = "ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
GAS_LIMIT = 1_000_000_000
TXS = int(os.environ.get("BENCH_TXS", "20000"))
RUNS = int(os.environ.get("BENCH_RUNS", "3"))
READ_SECONDS = int(os.environ.get("BENCH_READ_SECONDS", "3"))
FOUR_RATE = int(os.environ.get("BENCH_FOUR_RATE", "2000"))
FOUR_SECONDS = int(os.environ.get("BENCH_FOUR_SECONDS", "60"))
SYNC_BLOCKS = int(os.environ.get("BENCH_SYNC_BLOCKS", "10000"))
KINDS = ["eth", "erc20", "open"]
READS = ["eth_blockNumber", "eth_getBalance", "eth_call"]
CONCURRENCY = [1, 16, 64]
BEGIN, END = "<!-- make bench: begin -->", "<!-- make bench: end -->"


def log(msg):
    print(f"bench: {msg}", flush=True)


def rpc(url, method, params=None, timeout=2.0):
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params or []})
    req = urllib.request.Request(
        url, body.encode(), {"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(req, timeout=timeout) as r:
        answer = json.load(r)
    if "error" in answer:
        raise RuntimeError(f"{method}: {answer['error']}")
    return answer["result"]


def memory_kb(pid, field):
    """VmRSS (now) or VmHWM (peak) of a process, in kB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field} for {pid}")


def cpu_seconds(pid):
    """User and system CPU a process has used, in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def read_bench(node, key, *args):
    """A consort-bench read run, with the node's CPU per answered request (the load generator
    shares the cores, so this is the node's own cost, which the throughput alone hides)."""
    before = cpu_seconds(node.proc.pid)
    r = bench(node, key, *args)
    requests = r["requests_per_second"] * r["seconds"]
    r["server_cpu_us"] = 1e6 * (cpu_seconds(node.proc.pid) - before) / requests if requests else 0
    return r


class Node:
    """A node process: its JSON-RPC URL, metrics URL and how long it took to answer."""

    def __init__(self, argv, url, metrics, logfile):
        self.url, self.metrics, self.ws = url, metrics, None
        self.log = open(logfile, "w")
        started = time.monotonic()
        self.proc = subprocess.Popen(argv, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = started + 60
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{argv[0]} exited; see {logfile}")
            try:
                rpc(url, "eth_blockNumber", timeout=0.5)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{argv[0]} did not answer; see {logfile}")
                time.sleep(0.002)
        self.ready_ms = (time.monotonic() - started) * 1000

    def rss_mb(self, field="VmRSS"):
        return memory_kb(self.proc.pid, field) / 1024

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def genesis(source, path, **qbft):
    g = json.loads((ROOT / source).read_text())
    g["gasLimit"] = hex(GAS_LIMIT)
    g["config"]["qbft"].update(qbft)
    path.write_text(json.dumps(g))
    return path


def consort(profile, work, name, ip, genesis_file, key, extra=()):
    data = work / name
    argv = [
        str(TARGET / profile / "consort"),
        f"--genesis-file={genesis_file}",
        f"--data-path={data}",
        "--rpc-http-enabled",
        f"--rpc-http-host={ip}",
        "--rpc-http-port=8545",
        "--rpc-ws-enabled",
        f"--rpc-ws-host={ip}",
        "--rpc-ws-port=8546",
        "--metrics-enabled",
        f"--metrics-host={ip}",
        "--metrics-port=9545",
        "--host-allowlist=*",
        "--tx-pool-max-size=200000",
        *extra,
    ]
    if key:
        argv.append(f"--node-private-key-file={key}")
    node = Node(argv, f"http://{ip}:8545", f"http://{ip}:9545/metrics", work / f"{name}.log")
    node.ws = f"ws://{ip}:8546"
    return node


def anvil(work, name, ip, block_time="1"):
    argv = [
        str(ANVIL),
        f"--host={ip}",
        "--port=8545",
        f"--block-time={block_time}",
        f"--gas-limit={GAS_LIMIT}",
        "--silent",
    ]
    return Node(argv, f"http://{ip}:8545", None, work / f"{name}.log")


def bench_argv(nodes, key, *args, ws=False):
    """consort-bench against one node or a list of them (over their WebSockets with `ws`,
    following inclusion through newHeads), reading their metrics if served."""
    nodes = nodes if isinstance(nodes, list) else [nodes]
    urls = ",".join(n.ws if ws else n.url for n in nodes)
    argv = [str(BENCH), f"--rpc={urls}", f"--key={key}", "--json", *args]
    if all(n.metrics for n in nodes):
        argv.append("--metrics=" + ",".join(n.metrics for n in nodes))
    return argv


def bench(nodes, key, *args, ws=False):
    out = subprocess.run(bench_argv(nodes, key, *args, ws=ws), check=True, capture_output=True,
                         text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def wait_height(node, height, timeout=600):
    deadline = time.monotonic() + timeout
    while (head := int(rpc(node.url, "eth_blockNumber"), 16)) < height:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{node.url} stayed at block {head}, below {height}")
        time.sleep(0.05)
    return head


def log_reads(node, key):
    """eth_getLogs over the last 1,000 blocks of a chain of 20 ms blocks."""
    wait_height(node, 1_000)
    result = {}
    for c in CONCURRENCY:
        r = read_bench(node, key, "--read=eth_getLogs", f"--concurrency={c}",
                       f"--seconds={READ_SECONDS}")
        log(f"  eth_getLogs at {c}: {r['requests_per_second']:.0f} req/s, "
            f"{r['answer_items']} logs each")
        result[str(c)] = r
    return result


def single_node(start, key):
    """Start times, memory, inclusion and reads of one kind of node."""
    result = {"ready_ms": [], "inclusion": {}, "reads": {}}
    for i in range(RUNS):
        node = start(f"start{i}")
        result["ready_ms"].append(node.ready_ms)
        node.stop()
    node = start("single")
    try:
        time.sleep(3)
        result["rss_idle_mb"] = node.rss_mb()
        for kind in KINDS:
            runs = []
            for run in range(RUNS):
                r = bench(node, key, f"--kind={kind}", f"--txs={TXS}", "--senders=200",
                          "--concurrency=32")
                log(f"  {kind} run {run + 1}: {r['tx_per_second']:.0f} tx/s, "
                    f"p99 {r['latency_ms']['p99']:.0f} ms")
                runs.append(r)
            result["inclusion"][kind] = runs
        result["rss_loaded_mb"] = node.rss_mb()
        result["rss_peak_mb"] = node.rss_mb("VmHWM")
        for method in READS:
            for c in CONCURRENCY:
                r = read_bench(node, key, f"--read={method}", f"--concurrency={c}",
                               f"--seconds={READ_SECONDS}")
                log(f"  {method} at {c}: {r['requests_per_second']:.0f} req/s")
                result["reads"].setdefault(method, {})[str(c)] = r
    finally:
        node.stop()
    return result


def sync(profiles, work):
    """A validator of the first build makes SYNC_BLOCKS blocks of 2 ms under ERC-20 load; a fresh
    node of each build then syncs them from it over P2P."""
    g = genesis("chainspecs/dev.json", work / "sync.json", xblockperiodmilliseconds=2,
                emptyblockperiodseconds=0)
    source = consort(profiles[0], work, "sync-source", "127.0.0.205", g,
                     ROOT / "chainspecs/dev-validator.key",
                     ["--p2p-host=127.0.0.205", "--p2p-interface=127.0.0.205",
                      "--p2p-port=30303", "--rpc-http-api=ETH,NET,ADMIN"])
    result = {"blocks": SYNC_BLOCKS, "nodes": {}}
    try:
        enode = rpc(source.url, "admin_nodeInfo")["enode"]
        load = subprocess.Popen(
            bench_argv(source, DEV_KEY, "--kind=erc20", "--senders=50", "--concurrency=8",
                       "--rate=300", f"--txs={SYNC_BLOCKS * 3}"),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        started = time.monotonic()
        wait_height(source, SYNC_BLOCKS, timeout=1800)
        log(f"  built {SYNC_BLOCKS:,} blocks in {time.monotonic() - started:.0f} s")
        load.terminate()
        load.communicate()
        head = int(rpc(source.url, "eth_blockNumber"), 16)
        txs = 0
        for n in range(1, head + 1):
            txs += int(rpc(source.url, "eth_getBlockTransactionCountByNumber", [hex(n)]), 16)
        result["txs"] = txs
        for profile in profiles:
            node = consort(profile, work, f"sync-{profile}", "127.0.0.206", g,
                           None,
                           ["--p2p-host=127.0.0.206", "--p2p-interface=127.0.0.206",
                            "--p2p-port=30303", f"--bootnodes={enode}"])
            started = time.monotonic()
            try:
                wait_height(node, head, timeout=1800)
                seconds = time.monotonic() - started
                result["nodes"][profile] = {"seconds": seconds, "head": head,
                                            "blocks_per_second": head / seconds,
                                            "tx_per_second": txs / seconds,
                                            "rss_peak_mb": node.rss_mb("VmHWM")}
                log(f"  {profile} synced {head:,} blocks ({txs:,} transactions) in "
                    f"{seconds:.1f} s")
            finally:
                node.stop()
    finally:
        source.stop()
    return result


def four_validators(profile, work):
    """Four validators of genesis/qbft-4 on 127.0.0.211-214, ERC-20 load spread over all."""
    net = ROOT / "genesis/qbft-4"
    boot_key = (net / "validator1/key.pub").read_text().strip().removeprefix("0x")
    work.mkdir(parents=True, exist_ok=True)
    g = genesis("genesis/qbft-4/genesis.json", work / "qbft-4.json")
    nodes = []
    try:
        for i in range(1, 5):
            ip = f"127.0.0.{210 + i}"
            p2p = [f"--p2p-host={ip}", f"--p2p-interface={ip}", "--p2p-port=30303"]
            if i > 1:
                p2p.append(f"--bootnodes=enode://{boot_key}@127.0.0.211:30303")
            nodes.append(consort(profile, work, f"validator{i}", ip, g,
                                 net / f"validator{i}/key", p2p))
        wait_height(nodes[0], 2, timeout=60)
        idle = [n.rss_mb() for n in nodes]
        r = bench(nodes, DEV_KEY, "--kind=erc20", "--senders=400", "--concurrency=64",
                  f"--rate={FOUR_RATE}", f"--txs={FOUR_RATE * FOUR_SECONDS}", ws=True)
        r["rss_idle_mb"] = idle
        r["rss_peak_mb"] = [n.rss_mb("VmHWM") for n in nodes]
        log(f"  four validators: {r['tx_per_second']:.0f} tx/s of {FOUR_RATE} offered, "
            f"p99 {r['latency_ms']['p99']:.0f} ms")
        return r
    finally:
        for n in nodes:
            n.stop()


def ensure_anvil():
    if ANVIL.exists():
        return
    log(f"installing anvil {ANVIL_VERSION} from npm into {ANVIL.parents[4]}")
    subprocess.run(
        ["npm", "install", "--no-save", "--no-audit", "--no-fund", "--prefix",
         str(ANVIL.parents[4]), f"@foundry-rs/anvil-linux-amd64@{ANVIL_VERSION}"],
        check=True,
    )
    if not ANVIL.exists():
        sys.exit(f"bench: npm installed anvil {ANVIL_VERSION}, but not at {ANVIL}")


def machine():
    cpu = "unknown CPU"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as f:
        mem = int(f.readline().split()[1]) / 1024 / 1024
    os_name = platform.platform()
    try:
        os_name = dict(
            line.rstrip().split("=", 1) for line in open("/etc/os-release") if "=" in line
        )["PRETTY_NAME"].strip('"')
    except (OSError, KeyError):
        pass
    return f"{os.cpu_count()} vCPUs ({cpu}), {mem:.0f} GiB RAM, {os_name}"


def median(values):
    return statistics.median(values)


def report(results):
    """The Markdown between the markers."""
    names = [n for n in ["release", "debug", "anvil"] if n in results["single"]]
    title = {"release": "consort release", "debug": "consort debug (`make run`)",
             "anvil": f"anvil {ANVIL_VERSION}"}
    s = results["single"]
    out = [
        f"Written by `make bench` on {results['date']}: {results['machine']}.",
        f"Load generator: `consort-bench` ({results['bench_profile']} build), on the same cores "
        "as the node. Medians of "
        f"{RUNS} runs; {TXS:,} transactions per run from 200 senders, 32 requests in flight.",
        "Ratios are consort / anvil; above 1 consort is faster (or, for memory, start and CPU, "
        "larger).",
        "",
        "### Single node, 1 s blocks, 1 Ggas block gas limit",
        "",
        "| | " + " | ".join(title[n] for n in names) + " | release / anvil | debug / anvil |",
        "|---" * (len(names) + 3) + "|",
    ]

    def row(label, values, fmt, ratio=True):
        cells = [fmt(values[n]) if n in values else "–" for n in names]
        ratios = []
        for n in ["release", "debug"]:
            if ratio and n in values and "anvil" in values and values["anvil"]:
                ratios.append(f"{values[n] / values['anvil']:.2f}×")
            else:
                ratios.append("–")
        out.append(f"| {label} | " + " | ".join(cells) + " | " + " | ".join(ratios) + " |")

    kinds = {"eth": "ETH transfers included", "erc20": "ERC-20 transfers included",
             "open": "`open` (Caliper simple) included"}
    for kind, label in kinds.items():
        row(f"{label} (tx/s)",
            {n: median([r["tx_per_second"] for r in s[n]["inclusion"][kind]]) for n in names},
            lambda v: f"{v:,.0f}")
        row(f"{label}: p99 latency (ms)",
            {n: median([r["latency_ms"]["p99"] for r in s[n]["inclusion"][kind]])
             for n in names},
            lambda v: f"{v:,.0f}")
    for method in [*READS, "eth_getLogs"]:
        for c in CONCURRENCY:
            row(f"`{method}`, concurrency {c} (req/s)",
                {n: s[n]["reads"][method][str(c)]["requests_per_second"] for n in names},
                lambda v: f"{v:,.0f}")
        row(f"`{method}`, node CPU per request at concurrency {CONCURRENCY[-1]} (µs)",
            {n: s[n]["reads"][method][str(CONCURRENCY[-1])]["server_cpu_us"] for n in names},
            lambda v: f"{v:.1f}")
    row("start to RPC ready (ms, median)", {n: median(s[n]["ready_ms"]) for n in names},
        lambda v: f"{v:.0f}")
    row("resident memory idle (MB)", {n: s[n]["rss_idle_mb"] for n in names},
        lambda v: f"{v:.0f}")
    row("resident memory peak under load (MB)", {n: s[n]["rss_peak_mb"] for n in names},
        lambda v: f"{v:.0f}")
    out.append("")
    out.append("Every run: " + "; ".join(
        f"{title[n]} " + ", ".join(
            f"{kind} " + "/".join(f"{r['tx_per_second']:.0f}" for r in s[n]["inclusion"][kind])
            for kind in KINDS)
        for n in names) + " tx/s.")
    logs = s[names[0]]["reads"]["eth_getLogs"]["1"]
    out.append(f"`eth_getLogs` asks for one token's `Transfer` logs over blocks "
               f"{int(logs['params'][0]['fromBlock'], 16):,}–"
               f"{int(logs['params'][0]['toBlock'], 16):,} of a chain of 20 ms blocks and gets "
               f"{logs['answer_items']} logs; `eth_call` is that token's `balanceOf`.")
    if results["four"]:
        out += [
            "",
            f"### Four validators on this machine, 1 s blocks, ERC-20 offered at {FOUR_RATE:,} "
            f"tx/s for {FOUR_SECONDS} s, spread over the four's WebSockets, inclusion followed "
            "through `newHeads`",
            "",
            "| build | included (tx/s) | p50 (ms) | p95 (ms) | p99 (ms) | errors | "
            "resident memory idle / peak (MB) |",
            "|---|---|---|---|---|---|---|",
        ]
        for n, r in results["four"].items():
            lat = r["latency_ms"]
            errors = ", ".join(f"{k} {v}" for k, v in r["errors"].items()) or "none"
            rss = ", ".join(f"{i:.0f}/{p:.0f}" for i, p in zip(r["rss_idle_mb"],
                                                                   r["rss_peak_mb"]))
            out.append(f"| {n} | {r['tx_per_second']:,.0f} | {lat['p50']:.0f} | "
                       f"{lat['p95']:.0f} | {lat['p99']:.0f} | {errors} | {rss} |")
    sync = results["sync"]
    if sync:
        out += [
            "",
            f"### A fresh node syncing {sync['blocks']:,} blocks ({sync['txs']:,} transactions) "
            "from a validator over P2P",
            "",
            "| build | seconds | blocks/s | tx/s | resident memory peak (MB) |",
            "|---|---|---|---|---|",
        ]
        for n, r in sync["nodes"].items():
            out.append(f"| {n} | {r['seconds']:.1f} | {r['blocks_per_second']:,.0f} | "
                       f"{r['tx_per_second']:,.0f} | {r['rss_peak_mb']:.0f} |")
    return "\n".join(out)


def write(results):
    (TARGET / "bench").mkdir(parents=True, exist_ok=True)
    (TARGET / "bench/results.json").write_text(json.dumps(results, indent=1))
    doc = ROOT / "BENCHMARKS.md"
    text = doc.read_text()
    section = f"{BEGIN}\n{report(results)}\n{END}"
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        text = head + section + rest.split(END, 1)[1]
    else:
        text = text.rstrip() + "\n\n## `make bench`, node against anvil\n\n" + section + "\n"
    doc.write_text(text)
    log(f"wrote {doc} and {TARGET / 'bench/results.json'}")


def main():
    global BENCH
    profiles = [p for p in os.environ.get("BENCH_PROFILES", "release debug").split()
                if (TARGET / p / "consort").exists()]
    if not profiles:
        sys.exit(f"bench: no consort build under {TARGET}; run `make bench`")
    bench_profile = profiles[0]
    BENCH = TARGET / bench_profile / "consort-bench"
    ensure_anvil()
    results = {
        "date": datetime.date.today().isoformat(),
        "machine": machine(),
        "bench_profile": bench_profile,
        "single": {},
        "four": {},
        "sync": None,
    }
    work = Path(tempfile.mkdtemp(prefix="consort-bench-"))
    try:
        dev = genesis("chainspecs/dev.json", work / "dev.json")
        key = ROOT / "chainspecs/dev-validator.key"
        for profile in profiles:
            log(f"consort {profile}, one validator")
            results["single"][profile] = single_node(
                lambda name, p=profile: consort(p, work, f"{p}-{name}", "127.0.0.201", dev, key,
                                                ["--p2p-enabled=false"]),
                DEV_KEY,
            )
        log(f"anvil {ANVIL_VERSION}")
        results["single"]["anvil"] = single_node(
            lambda name: anvil(work, f"anvil-{name}", "127.0.0.202"), ANVIL_KEY)
        fast = genesis("chainspecs/dev.json", work / "fast.json", xblockperiodmilliseconds=20,
                       emptyblockperiodseconds=0)
        for name in [*profiles, "anvil"]:
            log(f"{name}, eth_getLogs on 20 ms blocks")
            node = (anvil(work, "anvil-logs", "127.0.0.202", "0.02") if name == "anvil" else
                    consort(name, work, f"{name}-logs", "127.0.0.201", fast, key,
                            ["--p2p-enabled=false"]))
            try:
                results["single"][name]["reads"]["eth_getLogs"] = log_reads(
                    node, ANVIL_KEY if name == "anvil" else DEV_KEY)
            finally:
                node.stop()
        log(f"sync of {SYNC_BLOCKS:,} blocks")
        results["sync"] = sync(profiles, work)
        for profile in profiles:
            log(f"consort {profile}, four validators")
            results["four"][profile] = four_validators(profile, work / f"four-{profile}")
        write(results)
    except (RuntimeError, subprocess.CalledProcessError) as e:
        detail = getattr(e, "stderr", "") or ""
        sys.exit(f"bench: {e} {detail}\n(logs kept in {work})")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
