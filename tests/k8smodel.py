"""Just enough of Kubernetes' semantics to follow a connection through rendered manifests.

A client pod (given by its labels) opens ``http://<service>.<namespace>.svc:<port>/<path>``:
- the Service resolves by name; its port maps to a targetPort (a number or a container port's
  name) on the pods its selector matches (label selectors: matchLabels plus the In / NotIn /
  Exists / DoesNotExist expressions);
- NetworkPolicies (https://kubernetes.io/docs/concepts/services-networking/network-policies/):
  a pod selected by no policy of a direction is open in that direction; a selected pod admits
  only what some rule of a selecting policy allows (peers by podSelector in the same namespace,
  namespaceSelector, or ipBlock for the pod's address; ports by number or the container port's
  name, TCP by default).
"""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit

POD_IP = ipaddress.ip_address("10.244.1.7")  # a pod address (private, as in every CNI)


def selector_matches(selector: dict | None, labels: dict) -> bool:
    """A LabelSelector: an empty selector matches everything."""
    selector = selector or {}
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and key in labels and labels[key] in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def workloads(docs: list[dict]):
    """(manifest, pod labels, pod spec) of every pod template."""
    for doc in docs:
        if doc["kind"] in {"Deployment", "StatefulSet", "DaemonSet", "Job"}:
            template = doc["spec"]["template"]
            yield doc, template["metadata"].get("labels") or {}, template["spec"]


def resolve(url: str, docs: list[dict], namespace: str) -> tuple[dict, dict, dict, int]:
    """The Service, the workload behind it, its container and the container port a URL reaches.
    Fails (AssertionError) where the chain breaks."""
    parts = urlsplit(url)
    host = parts.hostname
    default = {"http": 80, "https": 443}.get(parts.scheme)
    port = parts.port or default
    assert port, f"{url}: no port"
    name, *rest = host.split(".")
    assert rest in ([], [namespace], [namespace, "svc"],
                    [namespace, "svc", "cluster", "local"]), f"{url}: not a Service of {namespace}"
    services = [d for d in docs if d["kind"] == "Service" and d["metadata"]["name"] == name]
    assert len(services) == 1, f"{url}: {len(services)} Services named {name}"
    (service,) = services
    ports = [p for p in service["spec"]["ports"] if p["port"] == port]
    assert ports, f"{url}: Service {name} has no port {port}"
    target = ports[0].get("targetPort", port)
    backends = [(doc, spec) for doc, labels, spec in workloads(docs)
                if selector_matches({"matchLabels": service["spec"]["selector"]}, labels)]
    assert len(backends) == 1, f"{url}: Service {name} selects {len(backends)} workloads"
    doc, spec = backends[0]
    for container in spec["containers"]:
        for cport in container.get("ports") or []:
            if target in (cport.get("name"), cport["containerPort"]):
                return service, doc, container, cport["containerPort"]
    raise AssertionError(f"{url}: no container of {doc['metadata']['name']} listens on {target}")


def _port_allowed(rule_ports: list | None, port: int, port_names: set[str]) -> bool:
    if not rule_ports:
        return True
    for p in rule_ports:
        if p.get("protocol", "TCP") != "TCP":
            continue
        want = p.get("port")
        if want is None or want == port or want in port_names:
            return True
        if isinstance(want, int) and p.get("endPort") and want <= port <= p["endPort"]:
            return True
    return False


def _peer_matches(peer: dict, labels: dict, namespace_labels: dict) -> bool:
    if "ipBlock" in peer:
        block = peer["ipBlock"]
        if POD_IP not in ipaddress.ip_network(block["cidr"]):
            return False
        return not any(POD_IP in ipaddress.ip_network(e) for e in block.get("except") or [])
    if "namespaceSelector" in peer and not selector_matches(peer["namespaceSelector"],
                                                            namespace_labels):
        return False
    return selector_matches(peer.get("podSelector"), labels)


def allowed(policies: list[dict], src: dict, dst: dict, port: int,
            port_names: set[str] = frozenset(), namespace: str = "hub") -> tuple[bool, str]:
    """Whether NetworkPolicies let pod ``src`` (labels) open TCP ``port`` on pod ``dst``;
    (verdict, reason)."""
    ns_labels = {"kubernetes.io/metadata.name": namespace}
    for direction, own, other, key, peers in (("Egress", src, dst, "egress", "to"),
                                              ("Ingress", dst, src, "ingress", "from")):
        selecting = [p for p in policies
                     if selector_matches(p["spec"].get("podSelector"), own)
                     and direction in p["spec"].get("policyTypes", ["Ingress"])]
        if not selecting:
            continue
        ok = any(
            (not rule.get(peers) or any(_peer_matches(peer, other, ns_labels)
                                        for peer in rule[peers]))
            and _port_allowed(rule.get("ports"), port, set(port_names))
            for policy in selecting for rule in policy["spec"].get(key) or []
        )
        if not ok:
            names = [p["metadata"]["name"] for p in selecting]
            return False, f"{direction} denied by {names}"
    return True, "allowed"


def traefik_entrypoints(container: dict) -> dict[int, str]:
    """{port: entry point name} from traefik's ``--entrypoints.NAME.address=:PORT`` arguments."""
    found = {}
    for arg in container.get("args") or []:
        match = re.fullmatch(r"--entrypoints\.(\w+)\.address=:(\d+)", arg)
        if match:
            found[int(match[2])] = match[1]
    return found
