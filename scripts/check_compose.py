"""Checks a docker compose file offline: YAML that compose accepts in shape, every bind-mounted
file present (variables resolved with their defaults or the environment), one static address
per service inside the network's subnet, the nodes' bootnode pointing at a validator's address,
and every other image (Prometheus, Grafana) pinned to a tag other than latest."""
import ipaddress
import os
import re
import sys

import yaml

VAR = re.compile(r"\$\{([A-Z_][A-Z0-9_]*)(?::-([^}]*))?\}")


def resolve(text):
    return VAR.sub(lambda m: os.environ.get(m.group(1), m.group(2) or ""), text)


def pinned(image):
    """Whether `image` names a digest, or a tag other than latest."""
    if "@sha256:" in image:
        return True
    last = image.rsplit("/", 1)[-1]
    return ":" in last and last.split(":", 1)[1] not in ("", "latest")


def main(path):
    base = os.path.dirname(os.path.abspath(path))
    with open(path, encoding="utf-8") as f:
        doc = yaml.safe_load(f)
    errors = []
    services = doc.get("services") or {}
    if not services:
        errors.append("no services")
    known = {"image", "restart", "user", "read_only", "environment", "healthcheck", "command",
             "volumes", "networks", "ports"}
    subnets = {name: ipaddress.ip_network(c["subnet"])
               for name, net in (doc.get("networks") or {}).items()
               for c in (net or {}).get("ipam", {}).get("config", [])}
    named_volumes = set((doc.get("volumes") or {}).keys())
    addresses = {}
    for name, svc in services.items():
        for key in svc:
            if key not in known and not key.startswith("<<"):
                errors.append(f"{name}: unexpected key {key}")
        if "image" not in svc:
            errors.append(f"{name}: no image")
        for vol in svc.get("volumes", []):
            source = resolve(vol).split(":")[0]
            if source.startswith((".", "/")):
                if not os.path.exists(os.path.join(base, source)):
                    errors.append(f"{name}: {source} does not exist")
            elif source not in named_volumes:
                errors.append(f"{name}: volume {source} is not declared")
        for net, conf in (svc.get("networks") or {}).items():
            if net not in subnets:
                errors.append(f"{name}: network {net} is not declared")
                continue
            ip = ipaddress.ip_address((conf or {}).get("ipv4_address", "0.0.0.0"))
            if ip not in subnets[net]:
                errors.append(f"{name}: {ip} is outside {subnets[net]}")
            if ip in addresses.values():
                errors.append(f"{name}: {ip} is used twice")
            addresses[name] = ip
        for port in svc.get("ports", []):
            if not re.fullmatch(r"(\d+\.\d+\.\d+\.\d+:)?\d+:\d+", str(port)):
                errors.append(f"{name}: port {port} is not host:container")
    # The nodes are the services configured through CONSORT_* variables.
    nodes = {name: svc for name, svc in services.items()
             if any(str(k).startswith("CONSORT_") for k in (svc.get("environment") or {}))}
    if not nodes:
        errors.append("no service is a consort node (none has CONSORT_* variables)")
    for name, svc in services.items():
        if name not in nodes and not pinned(resolve(str(svc.get("image", "")))):
            errors.append(f"{name}: image {svc.get('image')} is not pinned to a tag or digest")
    for name, svc in nodes.items():
        boot = resolve(str((svc.get("environment") or {}).get("CONSORT_BOOTNODES", "")))
        m = re.fullmatch(r"enode://([0-9a-f]{128})@([\d.]+):30303", boot)
        if not m:
            errors.append(f"{name}: CONSORT_BOOTNODES {boot!r} is not an enode URL")
        elif ipaddress.ip_address(m.group(2)) not in addresses.values():
            errors.append(f"{name}: the bootnode {m.group(2)} is no service's address")
    for e in errors:
        print(f"{path}: {e}", file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
