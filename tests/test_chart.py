"""The Helm chart: rendered with real Helm (helm-python-sdk), linted, and validated offline.

The dependency charts (zero-to-jupyterhub, dask-gateway) cannot be downloaded here, so every
test works on a temporary copy of ``helm/hubkit`` with minimal stand-in charts under
``charts/``. A stand-in renders the values it receives into a ConfigMap, so the tests can check
what hubkit passes to the real charts, and carries a ``values.schema.json`` written here from the
real charts' schemas (see ``SUBCHART_SCHEMAS``), so Helm refuses a key the real chart lacks.
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


# --- Stand-in schemas ----------------------------------------------------------------------
# A subset of the real charts' value schemas, written from reading them:
#   jupyterhub 4.x: jupyterhub/zero-to-jupyterhub-k8s, jupyterhub/values.schema.yaml
#     (commit 02dd73df01bdbb6d602fed21b0be12565ab38080; the source of values.schema.json)
#   dask-gateway: dask/dask-gateway, resources/helm/dask-gateway/values.schema.yaml
#     (commit 100259f813acb2717ae1fbb760abb4ac33e6375a)
# Along every path hubkit sets, objects list the real chart's keys with
# additionalProperties: false, as the real schemas do there; "{}" marks a real key whose
# content hubkit does not set (anything goes). No "required": Helm validates the merged
# values, and a stand-in has no defaults to merge.


def _strict(**props) -> dict:
    return {"type": "object", "additionalProperties": False, "properties": props}


def _any(*names: str) -> dict:
    return {name: {} for name in names}


OPEN = {"type": "object", "additionalProperties": True}  # k8s-native passthrough objects
STR, NSTR = {"type": "string"}, {"type": ["string", "null"]}
BOOL, NBOOL = {"type": "boolean"}, {"type": ["boolean", "null"]}
NINT, ARRAY = {"type": ["integer", "null"]}, {"type": "array"}
QUANTITY = {"type": ["string", "number", "null"]}
LABELS = {"type": "object", "additionalProperties": False,
          "patternProperties": {".*": {"type": "string"}}}
PULL_POLICY = {"enum": [None, "", "IfNotPresent", "Always", "Never"]}

Z2JH_IMAGE = _strict(name=STR, tag=STR, pullPolicy=PULL_POLICY, pullSecrets=ARRAY)
Z2JH_NETPOL = _strict(
    enabled=BOOL, ingress=ARRAY, egress=ARRAY, allowedIngressPorts=ARRAY,
    interNamespaceAccessLabels={"enum": ["accept", "ignore"]},
    egressAllowRules=_strict(
        cloudMetadataServer=BOOL, dnsPortsCloudMetadataServer=BOOL,
        dnsPortsKubeSystemNamespace=BOOL, dnsPortsPrivateIPs=BOOL,
        nonPrivateIPs=BOOL, privateIPs=BOOL,
    ),
)
Z2JH_COMMON = ("revisionHistoryLimit", "pdb", "nodeSelector", "tolerations", "resources",
               "serviceAccount", "extraPodSpec", "labels", "annotations")

JUPYTERHUB_SCHEMA = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    **_strict(
        **_any("enabled", "fullnameOverride", "nameOverride", "imagePullSecret",
               "imagePullSecrets", "ingress", "custom", "debug", "rbac"),
        **{"global": OPEN},  # Helm hands every subchart the globals
        hub=_strict(
            **_any(*Z2JH_COMMON, "extraFiles", "baseUrl", "command", "args", "cookieSecret",
                   "image", "db", "initContainers", "extraEnv", "extraConfig", "fsGid",
                   "service", "existingSecret", "activeServerLimit", "allowNamedServers",
                   "authenticatePrometheus", "concurrentSpawnLimit", "consecutiveFailureLimit",
                   "deploymentStrategy", "extraContainers", "extraVolumeMounts", "extraVolumes",
                   "livenessProbe", "readinessProbe", "namedServerLimitPerUser",
                   "redirectToServer", "lifecycle", "shutdownOnLogout", "templatePaths",
                   "templateVars"),
            config=OPEN,
            services=OPEN,
            loadRoles=OPEN,
            networkPolicy=Z2JH_NETPOL,
            podSecurityContext={"additionalProperties": True},
            containerSecurityContext=OPEN,
        ),
        proxy=_strict(
            **_any("secretToken", "labels", "annotations", "deploymentStrategy"),
            chp=_strict(
                **_any(*Z2JH_COMMON, "extraCommandLineFlags", "extraEnv", "image",
                       "livenessProbe", "readinessProbe", "defaultTarget", "errorTarget"),
                networkPolicy=Z2JH_NETPOL,
                containerSecurityContext=OPEN,
            ),
            service=_strict(
                **_any("labels", "annotations", "nodePorts", "disableHttpPort", "extraPorts",
                       "loadBalancerIP", "loadBalancerSourceRanges"),
                type={"enum": ["ClusterIP", "NodePort", "LoadBalancer", "ExternalName"]},
            ),
            https=_strict(
                **_any("manual", "secret"),
                enabled=NBOOL,
                type={"enum": [None, "", "letsencrypt", "manual", "offload", "secret"]},
                letsencrypt=_strict(contactEmail=NSTR, acmeServer=NSTR),
                hosts=ARRAY,
            ),
            traefik=_strict(
                **_any(*Z2JH_COMMON, "networkPolicy", "extraInitContainers", "extraEnv",
                       "extraDynamicConfig", "extraPorts", "extraStaticConfig", "extraVolumes",
                       "extraVolumeMounts", "hsts", "image"),
                containerSecurityContext=OPEN,
            ),
            secretSync=_strict(**_any("image", "resources"), containerSecurityContext=OPEN),
        ),
        singleuser=_strict(
            **_any("podNameTemplate", "initContainers", "extraFiles", "nodeSelector",
                   "extraTolerations", "extraNodeAffinity", "extraPodAffinity",
                   "extraPodAntiAffinity", "cmd", "events", "extraAnnotations",
                   "extraContainers", "extraPodConfig", "extraResource", "networkTools",
                   "startTimeout"),
            networkPolicy=Z2JH_NETPOL,
            cpu=_strict(limit={"type": ["number", "null"]}, guarantee={"type": ["number", "null"]}),
            memory=_strict(limit=QUANTITY, guarantee=QUANTITY),
            image=Z2JH_IMAGE,
            profileList=ARRAY,
            extraEnv={"type": ["object", "array"], "additionalProperties": True},
            cloudMetadata=_strict(blockWithIptables=BOOL, ip=STR),
            defaultUrl=NSTR,
            extraLabels=LABELS,
            fsGid=NINT,
            lifecycleHooks=_strict(postStart=OPEN, preStop=OPEN),
            serviceAccountName=NSTR,
            storage=_strict(
                **_any("dynamic", "extraLabels", "extraVolumeMounts", "extraVolumes",
                       "homeMountPath", "static"),
                capacity=NSTR,
                type={"enum": ["dynamic", "static", "none"]},
            ),
            allowPrivilegeEscalation=NBOOL,
            uid=NINT,
        ),
        scheduling=_strict(
            **_any("podPriority", "corePods", "userPods"),
            userScheduler=_strict(
                **_any(*Z2JH_COMMON, "enabled", "replicas", "image", "logLevel", "plugins",
                       "pluginConfig"),
                containerSecurityContext=OPEN,
            ),
            userPlaceholder=_strict(
                **_any("enabled", "image", "revisionHistoryLimit", "replicas", "labels",
                       "annotations", "resources"),
                containerSecurityContext=OPEN,
            ),
        ),
        prePuller=_strict(
            **_any("revisionHistoryLimit", "labels", "annotations", "resources",
                   "extraTolerations", "continuous", "pullProfileListImages", "extraImages"),
            containerSecurityContext=OPEN,
            hook=_strict(
                **_any("enabled", "pullOnlyOnChanges", "podSchedulingWaitDuration",
                       "nodeSelector", "tolerations", "image", "resources", "serviceAccount"),
                containerSecurityContext=OPEN,
            ),
            pause=_strict(image={}, containerSecurityContext=OPEN),
        ),
        cull=_strict(
            **_any("adminUsers", "removeNamedServers", "concurrency", "maxAge"),
            enabled=BOOL, users=NBOOL, timeout=NINT, every=NINT,
        ),
    ),
}

DG_IMAGE = _strict(name=STR, tag=STR, pullPolicy=PULL_POLICY)
DG_LIMITS = _strict(request=QUANTITY, limit=QUANTITY)
DG_COMMON = ("image", "imagePullSecrets", "annotations", "resources", "nodeSelector",
             "affinity", "tolerations", "loglevel", "replicas")

DASK_GATEWAY_SCHEMA = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    **_strict(
        **_any("nameOverride", "controller", "rbac", "enabled"),
        **{"global": OPEN},
        fullnameOverride=NSTR,
        gateway=_strict(
            **_any(*DG_COMMON, "livenessProbe", "readinessProbe", "service"),
            extraConfig={"type": ["object", "string"],
                         "additionalProperties": {"type": "string"}},
            prefix=STR,
            auth=_strict(
                **_any("simple", "kerberos", "custom"),
                type={"enum": ["simple", "kerberos", "jupyterhub", "custom"]},
                jupyterhub=_strict(apiToken=NSTR, apiTokenFromSecretName={"type": ["string"]},
                                   apiTokenFromSecretKey={"type": ["string"]}, apiUrl=NSTR),
            ),
            backend=_strict(
                **_any("namespace", "environment"),
                image=DG_IMAGE,
                scheduler=_strict(extraPodConfig=OPEN, extraContainerConfig=OPEN,
                                  cores=DG_LIMITS, memory=DG_LIMITS),
                worker=_strict(extraPodConfig=OPEN, extraContainerConfig=OPEN,
                               cores=DG_LIMITS, memory=DG_LIMITS, threads=NINT),
            ),
        ),
        traefik=_strict(
            **_any(*DG_COMMON, "additionalArguments", "dashboard"),
            service=_strict(
                annotations={}, spec=OPEN, type=NSTR,
                ports=_strict(
                    web=_strict(port={"type": ["number"]}, nodePort={"type": ["number", "null"]}),
                    tcp=_strict(port={"type": ["string", "number"]},
                                nodePort={"type": ["number", "null"]}),
                ),
            ),
        ),
    ),
}

SUBCHART_SCHEMAS = {"jupyterhub": JUPYTERHUB_SCHEMA, "dask-gateway": DASK_GATEWAY_SCHEMA}


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
        (sub / "values.schema.json").write_text(json.dumps(SUBCHART_SCHEMAS[dep["name"]]))
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
    # the hub proxies /services/dask-gateway/ to traefik's web port, where the gateway serves
    assert gateway["traefik"]["service"]["ports"]["web"]["port"] == 80
    assert hub["singleuser"]["extraEnv"]["DASK_GATEWAY__ADDRESS"].endswith(
        gateway["gateway"]["prefix"])
    extra = gateway["gateway"]["extraConfig"]
    limits = extra["20-hubkit-limits"]
    assert "cluster_max_workers" in limits and "idle_timeout" in limits
    # hub scopes are enforced: the gateway knows its service name, tokens carry the access scope
    assert 'jupyterhub_service_name = "dask-gateway"' in extra["30-hubkit-auth"]
    access = "access:services!service=dask-gateway"
    roles = hub["hub"]["loadRoles"]
    assert access in roles["user"]["scopes"] and access in roles["server"]["scopes"]
    assert "access:servers!server" in roles["server"]["scopes"]
    assert "HUBKIT_MAX_CLUSTERS_PER_USER = " in extra["40-hubkit-user-limits"]
    assert "c.DaskGateway.backend_class = HubkitKubeBackend" in extra["40-hubkit-user-limits"]
    assert hub["cull"]["enabled"] is True and hub["cull"]["timeout"] > 0
    assert hub["cull"]["every"] > 0
    assert hub["singleuser"]["cpu"]["limit"] and hub["singleuser"]["memory"]["limit"]
    assert all("cpu_limit" in p["kubespawner_override"] and "mem_limit" in p["kubespawner_override"]
               for p in hub["singleuser"]["profileList"])
    assert sum(bool(p.get("default")) for p in hub["singleuser"]["profileList"]) == 1


def test_watch_is_off_by_default(chart_dir):
    """`hubkit chain watch` does not exist yet (issue 8): no watcher unless asked for."""
    docs = render(chart_dir, {})
    assert not [d for d in docs if d["metadata"]["name"] == "hubkit-watch"]
    schema = json.loads((CHART / "values.schema.json").read_text())
    assert "issue 8" in schema["properties"]["watch"]["description"]


def _kube_cluster_config_traits() -> set[str]:
    """Trait names of KubeClusterConfig, read from the installed source (its module needs
    kubernetes_asyncio, which is not installed here)."""
    import ast

    import dask_gateway_server.backends as backends

    source = Path(backends.__file__).with_name("kubernetes") / "backend.py"
    (cls,) = [node for node in ast.walk(ast.parse(source.read_text()))
              if isinstance(node, ast.ClassDef) and node.name == "KubeClusterConfig"]
    return {target.id for node in cls.body if isinstance(node, ast.Assign)
            for target in node.targets if isinstance(target, ast.Name)}


def test_gateway_extra_config_runs_against_dask_gateway_server(monkeypatch):
    """The extraConfig snippets use config names the installed dask-gateway-server has, the
    per-user cluster limit refuses a third cluster, and the options stay inside the limits."""
    import asyncio
    import sys
    import types

    pytest.importorskip("dask_gateway_server")
    from dask_gateway_server.app import DaskGateway
    from dask_gateway_server.auth import JupyterHubAuthenticator
    from dask_gateway_server.backends.base import Backend, ClusterConfig, PublicException
    from dask_gateway_server.models import User
    from traitlets.config import Config

    started = []

    class KubeBackend(Backend):  # stand-in: the real one needs kubernetes_asyncio
        running: dict = {}

        async def list_clusters(self, username=None, statuses=None):
            return self.running.get(username, [])

        async def start_cluster(self, user, cluster_options):
            started.append(user.name)
            return f"cluster-{len(started)}"

    fake = types.ModuleType("dask_gateway_server.backends.kubernetes")
    fake.KubeBackend = KubeBackend
    monkeypatch.setitem(sys.modules, "dask_gateway_server.backends.kubernetes", fake)

    extra = yaml.safe_load((CHART / "values.yaml").read_text())["dask-gateway"]["gateway"][
        "extraConfig"]
    c = Config()
    c.KubeClusterConfig.image = "ghcr.io/hubkit/hubkit-notebook:0.1.0"  # set by the chart
    for key in sorted(extra):  # the order the chart writes them in
        exec(compile(extra[key], f"extraConfig.{key}", "exec"), {"c": c})

    kube_traits = _kube_cluster_config_traits()
    classes = {"ClusterConfig": set(ClusterConfig.class_trait_names()),
               "KubeClusterConfig": kube_traits,
               "JupyterHubAuthenticator": set(JupyterHubAuthenticator.class_trait_names()),
               "Backend": set(Backend.class_trait_names()),
               "DaskGateway": set(DaskGateway.class_trait_names())}
    for section in c:
        assert section in classes, section
        unknown = set(c[section]) - set(classes[section])
        assert not unknown, f"{section}: {unknown}"

    limits = ClusterConfig(config=c)  # traitlets validates the values
    assert limits.idle_timeout == 1800 and limits.cluster_max_workers == 20
    # "G" means GiB to dask-gateway-server
    assert limits.cluster_max_cores == 40 and limits.cluster_max_memory == 160 * 2**30
    assert c.JupyterHubAuthenticator.jupyterhub_service_name == "dask-gateway"

    options = c.Backend.cluster_options
    user = User("alice")
    requested = options.parse_options({"worker_cores": 2, "worker_memory": 8.0})
    chosen = options.get_configuration(requested, user)
    assert set(chosen) <= classes["ClusterConfig"] | kube_traits
    assert chosen["worker_cores_limit"] == 2 and chosen["worker_memory_limit"] == "8.0G"
    assert chosen["idle_timeout"] == 30 * 60
    with pytest.raises(ValueError, match="worker_cores must be <="):
        options.parse_options({"worker_cores": 64})

    backend_class = c.DaskGateway.backend_class
    assert issubclass(backend_class, KubeBackend)
    backend = backend_class(config=c)
    assert asyncio.run(backend.start_cluster(user, {})) == "cluster-1"
    KubeBackend.running = {"alice": ["a", "b"]}
    with pytest.raises(PublicException, match="limit is 2"):
        asyncio.run(backend.start_cluster(user, {}))
    assert asyncio.run(backend.start_cluster(User("bob"), {})) == "cluster-2"


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


@pytest.mark.parametrize("values, wrong", [
    ({"jupyterhub": {"singleuser": {"memmory": {"limit": "4G"}}}}, "memmory"),
    ({"jupyterhub": {"proxy": {"chp": {"networkPolicy": {"egres": []}}}}}, "egres"),
    ({"jupyterhub": {"scheduling": {"userScheduler": {"securityContext": {}}}}},
     "securityContext"),
    ({"jupyterhub": {"cull": {"timeout": "1h"}}}, "timeout"),
    ({"dask-gateway": {"gateway": {"auth": {"jupyterhub": {"apiTokenSecretName": "hub"}}}}},
     "apiTokenSecretName"),
    ({"dask-gateway": {"traefik": {"service": {"port": 80}}}}, "port"),
])
def test_subchart_schema_rejects_a_key_the_real_chart_lacks(chart_dir, values, wrong):
    (chart,) = values
    with pytest.raises(helm_python.HelmError, match=rf"(?s)\b{chart}:.*{wrong}"):
        render(chart_dir, values)


def test_subchart_stand_in_schemas_are_strict_along_hubkit_paths():
    """Every object hubkit sets inside a subchart is checked key by key by the stand-in."""
    def check(values, node, path):
        if (not isinstance(values, dict) or "properties" not in node
                or node.get("additionalProperties", True) is not False):
            return
        for key, value in values.items():
            assert key in node["properties"], f"{path}.{key}"
            check(value, node["properties"][key], f"{path}.{key}")

    strict_paths = []

    def strict(node, path):
        if node.get("additionalProperties") is False and "properties" in node:
            strict_paths.append(path)
            for key, sub in node["properties"].items():
                strict(sub, f"{path}.{key}")

    for name, schema in SUBCHART_SCHEMAS.items():
        strict(schema, name)
        for values in (yaml.safe_load((CHART / "values.yaml").read_text()),
                       _values_file("values-all.yaml"), _values_file("values-dev.yaml")):
            check(values.get(name, {}), schema, name)
    for path in ("jupyterhub.singleuser.networkPolicy.egressAllowRules", "jupyterhub.cull",
                 "jupyterhub.proxy.chp.networkPolicy", "jupyterhub.prePuller.pause",
                 "jupyterhub.scheduling.userPlaceholder",
                 "dask-gateway.gateway.auth.jupyterhub", "dask-gateway.gateway.backend.worker",
                 "dask-gateway.traefik.service.ports.web"):
        assert path in strict_paths, path


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
