"""The Helm chart: rendered with real Helm (helm-python-sdk), linted, and validated offline.

The dependency charts (zero-to-jupyterhub, dask-gateway) cannot be downloaded here, so every
test works on a temporary copy of ``helm/hubkit`` with minimal stand-in charts under
``charts/``. A stand-in renders the values it receives into a ConfigMap, so the tests can check
what hubkit passes to the real charts.
"""

from __future__ import annotations

import base64
import copy
import json
import re
import shutil
from pathlib import Path

import pytest
import yaml
from conftest import REPO, need

CHART = REPO / "helm" / "hubkit"
KUBE_VERSION = "1.30"
RELEASE, NAMESPACE = "hubkit", "hub"
DEPENDENCIES = {
    "jupyterhub": "https://hub.jupyter.org/helm-chart/",
    "dask-gateway": "https://helm.dask.org/",
}

try:
    import helm_python
except ImportError:  # pragma: no cover - depends on the environment
    helm_python = None
try:
    import kubernetes_validate
except ImportError:  # pragma: no cover - depends on the environment
    kubernetes_validate = None


def _need_tools():
    need(helm_python is not None,
         "helm-python-sdk is not installed (pip install helm-python-sdk kubernetes-validate)")
    need(kubernetes_validate is not None,
         "kubernetes-validate is not installed (pip install helm-python-sdk kubernetes-validate)")


STANDIN_TEMPLATE = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: standin-{name}-values
data:
  values.json: {{{{ toJson .Values | quote }}}}
"""


@pytest.fixture(scope="module")
def chart_dir(tmp_path_factory) -> Path:
    """A copy of the chart with a stand-in for each dependency under ``charts/``."""
    _need_tools()
    root = tmp_path_factory.mktemp("chart") / "hubkit"
    shutil.copytree(CHART, root, ignore=shutil.ignore_patterns("charts", "*.tgz"))
    declared = yaml.safe_load((CHART / "Chart.yaml").read_text())["dependencies"]
    for dep in declared:
        sub = root / "charts" / dep["name"]
        (sub / "templates").mkdir(parents=True)
        (sub / "Chart.yaml").write_text(
            f"apiVersion: v2\nname: {dep['name']}\nversion: {dep['version']}\n"
            "description: test stand-in\n"
        )
        (sub / "values.yaml").write_text("{}\n")
        (sub / "templates" / "values.yaml").write_text(STANDIN_TEMPLATE.format(name=dep["name"]))
    return root


def _values_file(name: str) -> dict:
    return yaml.safe_load((CHART / "ci" / name).read_text())


def render(chart_dir: Path, values: dict | None = None) -> list[dict]:
    """Every manifest the chart renders (the stand-ins' value dumps included)."""
    chart = helm_python.Chart.load(chart_dir)
    files = chart.render(values or {}, name=RELEASE, namespace=NAMESPACE, is_install=True)
    docs = []
    for path, text in sorted(files.items()):
        if path.endswith("NOTES.txt"):
            continue
        for doc in yaml.safe_load_all(text):
            if doc:
                doc.setdefault("_source", path)
                docs.append(doc)
    return docs


def subchart_values(docs: list[dict], name: str) -> dict:
    (cm,) = [d for d in docs if d["metadata"]["name"] == f"standin-{name}-values"]
    return json.loads(cm["data"]["values.json"])


def own(docs: list[dict]) -> list[dict]:
    """Manifests of hubkit's own templates (not the stand-ins)."""
    return [d for d in docs if "/charts/" not in d["_source"]]


def pod_specs(doc: dict):
    kind = doc["kind"]
    if kind in {"Deployment", "StatefulSet", "DaemonSet", "Job", "ReplicaSet"}:
        yield doc["spec"]["template"]["spec"]
    elif kind == "CronJob":
        yield doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    elif kind == "Pod":
        yield doc["spec"]


VALUE_SETS = {
    "defaults": lambda: {},
    "values-all": lambda: _values_file("values-all.yaml"),
    "values-dev": lambda: _values_file("values-dev.yaml"),
}


@pytest.fixture(scope="module", params=sorted(VALUE_SETS))
def rendered(request, chart_dir):
    values = VALUE_SETS[request.param]()
    return request.param, values, render(chart_dir, values)


def test_dependencies_are_the_real_charts(chart_dir):
    deps = {d["name"]: d for d in helm_python.dependency_list(chart_dir)}
    assert set(deps) == set(DEPENDENCIES)
    for name, repository in DEPENDENCIES.items():
        assert deps[name]["repository"] == repository
        assert deps[name]["status"] in {"ok", "unpacked"}, deps[name]


@pytest.mark.parametrize("values_file", [None, "values-all.yaml", "values-dev.yaml"])
def test_lint_clean(chart_dir, values_file):
    values = _values_file(values_file) if values_file else {}
    report = helm_python.lint(chart_dir, values, strict=True, kube_version=f"v{KUBE_VERSION}.0")
    problems = [m for m in report["messages"] if m["severity"] >= 2]
    assert not report["errors"] and not problems, report


def test_manifests_valid_against_kubernetes_schemas(rendered):
    _, _, docs = rendered
    assert len(own(docs)) >= 4
    for doc in docs:
        manifest = {k: v for k, v in doc.items() if k != "_source"}
        try:
            kubernetes_validate.validate(manifest, KUBE_VERSION, strict=True)
        except kubernetes_validate.ValidationError as err:
            pytest.fail(f"{doc['_source']}: {doc['kind']} {doc['metadata']['name']}: {err}")


def _check_container_context(where: str, ctx: dict | None):
    assert ctx, f"{where}: no securityContext"
    assert ctx.get("allowPrivilegeEscalation") is False, where
    assert ctx.get("capabilities", {}).get("drop") == ["ALL"], where
    assert ctx.get("seccompProfile", {}).get("type") == "RuntimeDefault", where
    assert ctx.get("privileged") in (None, False), where


def test_every_own_pod_is_locked_down(rendered):
    name, _, docs = rendered
    specs = [(d, s) for d in own(docs) for s in pod_specs(d)]
    if name != "defaults":  # the S3 server, its bucket job and the watcher
        assert len(specs) >= 2
    for doc, spec in specs:
        where = f"{doc['kind']} {doc['metadata']['name']}"
        pod = spec["securityContext"]
        assert pod["runAsNonRoot"] is True and pod["runAsUser"] > 0, where
        assert pod["seccompProfile"]["type"] == "RuntimeDefault", where
        assert spec.get("automountServiceAccountToken") is False, where
        for container in spec["containers"] + spec.get("initContainers", []):
            _check_container_context(f"{where}/{container['name']}", container["securityContext"])
            assert container.get("resources", {}).get("limits"), f"{where}: no limits"


def test_subchart_pods_are_locked_down(rendered):
    _, _, docs = rendered
    hub = subchart_values(docs, "jupyterhub")
    gateway = subchart_values(docs, "dask-gateway")
    contexts = {
        "hub": hub["hub"]["containerSecurityContext"],
        "proxy.chp": hub["proxy"]["chp"]["containerSecurityContext"],
        "proxy.traefik": hub["proxy"]["traefik"]["containerSecurityContext"],
        "proxy.secretSync": hub["proxy"]["secretSync"]["containerSecurityContext"],
        "userScheduler": hub["scheduling"]["userScheduler"]["containerSecurityContext"],
        "userPlaceholder": hub["scheduling"]["userPlaceholder"]["containerSecurityContext"],
        "prePuller": hub["prePuller"]["containerSecurityContext"],
        "prePuller.hook": hub["prePuller"]["hook"]["containerSecurityContext"],
        "prePuller.pause": hub["prePuller"]["pause"]["containerSecurityContext"],
        "user servers": hub["hub"]["config"]["KubeSpawner"]["container_security_context"],
    }
    for role in ("scheduler", "worker"):
        backend = gateway["gateway"]["backend"][role]
        contexts[f"dask {role}"] = backend["extraContainerConfig"]["securityContext"]
        pod = backend["extraPodConfig"]["securityContext"]
        assert pod["runAsNonRoot"] is True and pod["runAsUser"] == 1000
        assert backend["extraPodConfig"]["automountServiceAccountToken"] is False
    for where, ctx in contexts.items():
        _check_container_context(where, ctx)
    assert hub["singleuser"]["uid"] == 1000
    assert hub["singleuser"]["allowPrivilegeEscalation"] is False
    # the metadata endpoint is blocked by policy, not by a privileged iptables init container
    assert hub["singleuser"]["cloudMetadata"]["blockWithIptables"] is False


def test_network_policies(rendered):
    _, values, docs = rendered
    policies = {d["metadata"]["name"]: d for d in own(docs) if d["kind"] == "NetworkPolicy"}
    assert {"hubkit-dask-clusters", "hubkit-jobs", "hubkit-hub-from-gateway"} <= set(policies)
    if values.get("storage", {}).get("type") == "inCluster":
        assert "hubkit-s3" in policies
    for name in ("hubkit-dask-clusters", "hubkit-jobs"):
        blocks = [
            peer["ipBlock"]
            for rule in policies[name]["spec"]["egress"]
            for peer in rule.get("to", [])
            if "ipBlock" in peer
        ]
        assert blocks and all("169.254.169.254/32" in b["except"] for b in blocks), name
    hub = subchart_values(docs, "jupyterhub")
    for part in (hub["hub"], hub["singleuser"], hub["proxy"]["chp"]):
        assert part["networkPolicy"]["enabled"] is True
    assert hub["singleuser"]["networkPolicy"]["egressAllowRules"]["cloudMetadataServer"] is False
    gateway_egress = [
        rule for rule in hub["singleuser"]["networkPolicy"]["egress"]
        for peer in rule["to"]
        if peer.get("podSelector", {}).get("matchLabels", {}).get("app.kubernetes.io/component")
        == "traefik"
    ]
    assert gateway_egress, "user servers cannot reach the gateway's traefik"


def test_user_and_worker_image_are_the_same(rendered):
    _, values, docs = rendered
    hub = subchart_values(docs, "jupyterhub")
    gateway = subchart_values(docs, "dask-gateway")
    user = hub["singleuser"]["image"]
    worker = gateway["gateway"]["backend"]["image"]
    assert (user["name"], str(user["tag"])) == (worker["name"], str(worker["tag"]))
    mine = values.get("image", yaml.safe_load((CHART / "values.yaml").read_text())["image"])
    assert (user["name"], str(user["tag"])) == (mine["name"], str(mine["tag"]))
    env = hub["singleuser"]["extraEnv"]
    assert env["DASK_GATEWAY__CLUSTER__OPTIONS__IMAGE"] == "{JUPYTER_IMAGE_SPEC}"
    options = gateway["gateway"]["extraConfig"]["10-hubkit-options"]
    assert '"image"' in options
    # the image has `dask`, not the removed dask-scheduler / dask-worker scripts
    assert 'worker_cmd = ["dask", "worker"]' in options


def test_mismatched_worker_image_is_refused(chart_dir):
    values = {"dask-gateway": {"gateway": {"backend": {"image": {"tag": "other"}}}}}
    with pytest.raises(helm_python.HelmError, match="must run the same image"):
        render(chart_dir, values)


def test_environment_is_wired(rendered):
    _, values, docs = rendered
    hub = subchart_values(docs, "jupyterhub")
    gateway = subchart_values(docs, "dask-gateway")
    env = hub["singleuser"]["extraEnv"]
    assert env["DASK_GATEWAY__ADDRESS"] == "http://proxy-public/services/dask-gateway"
    assert env["DASK_GATEWAY__AUTH__TYPE"] == "jupyterhub"
    assert env["DASK_GATEWAY__PROXY_ADDRESS"].startswith("gateway://traefik-dask-gateway:")
    assert env["DASK_GATEWAY__PUBLIC_ADDRESS"] == "/services/dask-gateway/"
    assert "{JUPYTERHUB_SERVICE_PREFIX}" in env["DASK_DISTRIBUTED__DASHBOARD__LINK"]
    assert env["HUBKIT_STORE"]["valueFrom"]["configMapKeyRef"]["name"] == "hubkit-env"
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        ref = env[key]["valueFrom"]["secretKeyRef"]
        assert ref["name"] == "hubkit-storage-credentials" and ref["key"] == key

    (config,) = [d for d in own(docs) if d["kind"] == "ConfigMap"]
    assert config["metadata"]["name"] == "hubkit-env"
    if values.get("storage", {}).get("type") == "inCluster":
        bucket = values["storage"].get("inCluster", {}).get("bucket", "hubkit")
        assert config["data"]["HUBKIT_STORE"] == f"s3://{bucket}/store"
        assert config["data"]["FSSPEC_S3_ENDPOINT_URL"] == f"http://hubkit-s3.{NAMESPACE}.svc:9000"
    else:
        assert config["data"]["HUBKIT_STORE"] == "s3://hubkit/store"
    for role in ("scheduler", "worker"):
        env_from = gateway["gateway"]["backend"][role]["extraContainerConfig"]["envFrom"]
        assert {"configMapRef": {"name": "hubkit-env"}} in env_from
        assert gateway["gateway"]["backend"][role]["extraPodConfig"]["serviceAccountName"] == (
            "hubkit-storage")
    assert hub["singleuser"]["serviceAccountName"] == "hubkit-storage"
    # the image's example notebooks land in a new user's home
    hook = hub["singleuser"]["lifecycleHooks"]["postStart"]["exec"]["command"]
    assert "/opt/hubkit/notebooks" in hook[-1]


def test_gateway_authenticated_by_the_hub_and_private(rendered):
    _, _, docs = rendered
    hub = subchart_values(docs, "jupyterhub")
    gateway = subchart_values(docs, "dask-gateway")
    auth = gateway["gateway"]["auth"]
    assert auth["type"] == "jupyterhub"
    assert "apiToken" not in auth["jupyterhub"]  # no hand-made token: the hub generates it
    assert auth["jupyterhub"]["apiTokenFromSecretName"] == "hub"
    assert auth["jupyterhub"]["apiTokenFromSecretKey"] == "hub.services.dask-gateway.apiToken"
    service = hub["hub"]["services"]["dask-gateway"]
    assert "apiToken" not in service and service["url"] == "http://traefik-dask-gateway"
    assert gateway["fullnameOverride"] == "dask-gateway"
    assert gateway["traefik"]["service"]["type"] == "ClusterIP"
    assert gateway["gateway"]["prefix"] == "/services/dask-gateway"
    limits = gateway["gateway"]["extraConfig"]["20-hubkit-limits"]
    assert "cluster_max_workers" in limits and "idle_timeout" in limits
    assert hub["cull"]["enabled"] is True and hub["cull"]["timeout"] > 0
    assert all("cpu_limit" in p["kubespawner_override"] and "mem_limit" in p["kubespawner_override"]
               for p in hub["singleuser"]["profileList"])


def test_public_gateway_is_refused(chart_dir):
    values = {"dask-gateway": {"traefik": {"service": {"type": "LoadBalancer"}}}}
    with pytest.raises(helm_python.HelmError, match="only through the hub proxy"):
        render(chart_dir, values)


SECRET_WORDS = ("password", "secret", "token", "access_key")
SENSITIVE_KEY = re.compile(r"password|secret|token|access_?key", re.IGNORECASE)
REFERENCE_KEY = re.compile(r"(ref|name|key|type)$", re.IGNORECASE)  # secretKeyRef, ...Name


def _plaintext(obj, path=""):
    """(path, value) of string values under keys that sound like credentials themselves."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            where = f"{path}.{k}"
            if (isinstance(v, str) and v and SENSITIVE_KEY.search(k)
                    and not REFERENCE_KEY.search(k)):
                yield where, v
            yield from _plaintext(v, where)
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _plaintext(v, f"{path}[{i}]")


def test_no_plaintext_credentials(rendered):
    _, _, docs = rendered
    for doc in own(docs):
        if doc["kind"] == "Secret":
            assert "stringData" not in doc
            continue
        for container_env in _env_lists(doc):
            for var in container_env:
                if any(w in var["name"].lower() for w in SECRET_WORDS):
                    assert "value" not in var and "secretKeyRef" in var["valueFrom"], var
        found = list(_plaintext({k: v for k, v in doc.items() if k != "_source"}))
        assert not found, f"{doc['kind']} {doc['metadata']['name']}: {found}"
    hub = subchart_values(docs, "jupyterhub")
    for name, value in hub["singleuser"]["extraEnv"].items():
        if any(w in name.lower() for w in SECRET_WORDS):
            assert isinstance(value, dict) and "secretKeyRef" in value["valueFrom"], name
    gateway = subchart_values(docs, "dask-gateway")
    assert not list(_plaintext(gateway))
    assert not list(_plaintext(hub))


def _env_lists(doc):
    for spec in pod_specs(doc):
        for container in spec["containers"] + spec.get("initContainers", []):
            yield container.get("env", [])


def test_in_cluster_keys_are_generated_in_a_secret(chart_dir):
    docs = render(chart_dir, {"storage": {"type": "inCluster"}})
    (secret,) = [d for d in docs if d["kind"] == "Secret"]
    assert secret["metadata"]["name"] == "hubkit-storage-credentials"
    assert set(secret["data"]) == {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}
    (server,) = [d for d in docs if d["kind"] == "Deployment"
                 and d["metadata"]["name"] == "hubkit-s3"]
    env = server["spec"]["template"]["spec"]["containers"][0]["env"]
    assert all("valueFrom" in v for v in env if v["name"].startswith("MINIO_"))
    # the generated keys appear nowhere but in the Secret's data
    keys = [base64.b64decode(v).decode() for v in secret["data"].values()]
    assert all(len(k) >= 12 for k in keys)
    elsewhere = json.dumps([d for d in docs if d is not secret])
    assert not any(k in elsewhere for k in keys)


def test_checksum_annotations_roll_pods_on_config_change(chart_dir):
    base = {"watch": {"enabled": True}}
    changed = copy.deepcopy(base) | {"storage": {"type": "s3", "s3": {"bucket": "elsewhere"}}}

    def checksum(values):
        (watch,) = [d for d in render(chart_dir, values) if d["kind"] == "Deployment"
                    and d["metadata"]["name"] == "hubkit-watch"]
        return watch["spec"]["template"]["metadata"]["annotations"]["checksum/config"]

    assert checksum(base) == checksum(base)
    assert checksum(base) != checksum(changed)


def test_dummy_authenticator_only_in_explicit_dev_values(chart_dir):
    dev = _values_file("values-dev.yaml")
    render(chart_dir, dev)  # allowed there
    dev["dev"]["allowDummyAuthenticator"] = False
    with pytest.raises(helm_python.HelmError, match="DummyAuthenticator"):
        render(chart_dir, dev)
    defaults = yaml.safe_load((CHART / "values.yaml").read_text())
    assert "dummy" not in json.dumps(defaults["jupyterhub"]).lower()


def test_schema_rejects_a_misspelled_key(chart_dir):
    with pytest.raises(helm_python.HelmError, match="storrage"):
        render(chart_dir, {"storrage": {"type": "s3"}})
    with pytest.raises(helm_python.HelmError, match="bukket"):
        render(chart_dir, {"storage": {"s3": {"bukket": "x"}}})
    with pytest.raises(helm_python.HelmError):
        render(chart_dir, {"storage": {"type": "nfs"}})


def _walk_schema(node, path=""):
    for key, sub in node.get("properties", {}).items():
        yield f"{path}.{key}", sub
        yield from _walk_schema(sub, f"{path}.{key}")


def test_schema_describes_every_key():
    schema = json.loads((CHART / "values.schema.json").read_text())
    missing = [path for path, sub in _walk_schema(schema) if not sub.get("description")]
    assert not missing, missing
    strict = [path for path, sub in _walk_schema(schema)
              if sub.get("type") == "object" and sub.get("additionalProperties") is False]
    assert len(strict) >= 8

    def covered(values, node, path=""):
        for key, value in values.items():
            props = node.get("properties", {})
            assert key in props, f"{path}.{key} is not in values.schema.json"
            if isinstance(value, dict) and "properties" in props[key]:
                covered(value, props[key], f"{path}.{key}")

    for values in (yaml.safe_load((CHART / "values.yaml").read_text()),
                   _values_file("values-all.yaml")):
        covered(values, schema)


def test_values_all_sets_every_option():
    schema = json.loads((CHART / "values.schema.json").read_text())
    values = _values_file("values-all.yaml")

    def check(node, vals, path):
        for key, sub in node.get("properties", {}).items():
            if path == "" and key in {"global", "jupyterhub", "dask-gateway"}:
                continue
            assert key in vals, f"ci/values-all.yaml does not set {path}.{key}"
            if sub.get("additionalProperties") is False and "properties" in sub:
                check(sub, vals[key], f"{path}.{key}")

    check(schema, values, "")
