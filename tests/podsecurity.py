"""The Kubernetes Pod Security Standards, "baseline" and "restricted" levels, as a checker.

Written from the standard itself: https://kubernetes.io/docs/concepts/security/pod-security-standards/
(the policy the built-in Pod Security admission controller enforces with the namespace label
``pod-security.kubernetes.io/enforce: restricted``). The restricted level includes every baseline
control; each control below names its row of that page and the fields it reads. Where the page
allows a field to be "undefined/nil", an absent field passes.

No maintained checker of the profile installs from PyPI and runs offline: checkov's Kubernetes
checks are CIS-style recommendations (e.g. "do not admit root containers", "use read-only file
systems"), not the profile's rules (its volume-type allow-list, the capability add-list, the
per-container fallback of runAsNonRoot and seccompProfile), and the admission controller itself
is Go code inside the API server. So the rules are implemented here, with tests of their own
(tests/test_chart.py::test_pod_security_checker_*) that show each rule rejecting a bad pod.
"""

from __future__ import annotations

# Baseline "Capabilities": containers may add only these.
BASELINE_CAPABILITIES = {
    "AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD",
    "NET_BIND_SERVICE", "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT",
}
# Baseline "SELinux": allowed types (user and role must stay unset).
SELINUX_TYPES = {"", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"}
# Baseline "Sysctls": the safe set.
SAFE_SYSCTLS = {
    "kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range", "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies", "net.ipv4.ping_group_range", "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_fin_timeout", "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
}
# Restricted "Volume Types": the only volume sources allowed.
RESTRICTED_VOLUMES = {
    "configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim",
    "projected", "secret",
}
GOOD_SECCOMP = {"RuntimeDefault", "Localhost"}


def _containers(spec: dict):
    for field in ("initContainers", "containers", "ephemeralContainers"):
        for container in spec.get(field) or []:
            yield f"{field}[{container.get('name', '?')}]", container


def baseline_violations(spec: dict, annotations: dict | None = None) -> list[str]:
    """Violations of the baseline level by a pod spec (and the pod's annotations)."""
    found = []
    pod_ctx = spec.get("securityContext") or {}
    # HostProcess
    if (pod_ctx.get("windowsOptions") or {}).get("hostProcess"):
        found.append("HostProcess: spec.securityContext.windowsOptions.hostProcess")
    # Host Namespaces
    for field in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(field):
            found.append(f"Host Namespaces: spec.{field}")
    # HostPath Volumes
    for volume in spec.get("volumes") or []:
        if "hostPath" in volume:
            found.append(f"HostPath Volumes: volume {volume.get('name')}")
    # AppArmor (field and the older annotation), SELinux, Seccomp, Sysctls at pod level
    found += _apparmor("spec.securityContext", pod_ctx)
    for key, value in (annotations or {}).items():
        if key.startswith("container.apparmor.security.beta.kubernetes.io/") and not (
                value == "runtime/default" or value.startswith("localhost/")):
            found.append(f"AppArmor: annotation {key}={value}")
    found += _selinux("spec.securityContext", pod_ctx)
    if (pod_ctx.get("seccompProfile") or {}).get("type") == "Unconfined":
        found.append("Seccomp: spec.securityContext.seccompProfile.type Unconfined")
    for sysctl in pod_ctx.get("sysctls") or []:
        if sysctl.get("name") not in SAFE_SYSCTLS:
            found.append(f"Sysctls: {sysctl.get('name')}")
    for where, container in _containers(spec):
        ctx = container.get("securityContext") or {}
        if (ctx.get("windowsOptions") or {}).get("hostProcess"):
            found.append(f"HostProcess: {where}")
        if ctx.get("privileged"):
            found.append(f"Privileged Containers: {where}")
        added = set((ctx.get("capabilities") or {}).get("add") or [])
        if added - BASELINE_CAPABILITIES:
            found.append(f"Capabilities: {where} adds {sorted(added - BASELINE_CAPABILITIES)}")
        for port in container.get("ports") or []:
            if port.get("hostPort"):
                found.append(f"Host Ports: {where} hostPort {port['hostPort']}")
        found += _apparmor(where, ctx)
        found += _selinux(where, ctx)
        if ctx.get("procMount") not in (None, "Default"):
            found.append(f"/proc Mount Type: {where} {ctx['procMount']}")
        if (ctx.get("seccompProfile") or {}).get("type") == "Unconfined":
            found.append(f"Seccomp: {where} Unconfined")
    return found


def _apparmor(where: str, ctx: dict) -> list[str]:
    kind = (ctx.get("appArmorProfile") or {}).get("type")
    if kind not in (None, "RuntimeDefault", "Localhost"):
        return [f"AppArmor: {where}.appArmorProfile.type {kind}"]
    return []


def _selinux(where: str, ctx: dict) -> list[str]:
    options = ctx.get("seLinuxOptions") or {}
    found = []
    if options.get("type", "") not in SELINUX_TYPES:
        found.append(f"SELinux: {where} type {options['type']}")
    for field in ("user", "role"):
        if options.get(field):
            found.append(f"SELinux: {where} sets {field}")
    return found


def restricted_violations(spec: dict, annotations: dict | None = None) -> list[str]:
    """Violations of the restricted level (which includes baseline) by a pod spec."""
    found = baseline_violations(spec, annotations)
    pod_ctx = spec.get("securityContext") or {}
    # Volume Types
    for volume in spec.get("volumes") or []:
        sources = set(volume) - {"name"}
        if not sources <= RESTRICTED_VOLUMES:
            found.append(f"Volume Types: volume {volume.get('name')} uses {sorted(sources)}")
    # Running as Non-root user: runAsUser must not be 0 anywhere
    if pod_ctx.get("runAsUser") == 0:
        found.append("Running as Non-root user: spec.securityContext.runAsUser 0")
    pod_non_root = pod_ctx.get("runAsNonRoot")
    pod_seccomp = (pod_ctx.get("seccompProfile") or {}).get("type")
    for where, container in _containers(spec):
        ctx = container.get("securityContext") or {}
        # Privilege Escalation: must be set to false
        if ctx.get("allowPrivilegeEscalation") is not False:
            found.append(f"Privilege Escalation: {where} allowPrivilegeEscalation is not false")
        # Running as Non-root: true at pod level (not overridden) or in every container
        container_non_root = ctx.get("runAsNonRoot")
        if container_non_root is False or (container_non_root is None and pod_non_root is not True):
            found.append(f"Running as Non-root: {where} runAsNonRoot is not true")
        if ctx.get("runAsUser") == 0:
            found.append(f"Running as Non-root user: {where} runAsUser 0")
        # Seccomp: RuntimeDefault or Localhost at pod level, or in every container
        container_seccomp = (ctx.get("seccompProfile") or {}).get("type")
        if (container_seccomp or pod_seccomp) not in GOOD_SECCOMP:
            found.append(f"Seccomp: {where} seccompProfile.type is not RuntimeDefault/Localhost")
        # Capabilities: drop ALL; add only NET_BIND_SERVICE
        capabilities = ctx.get("capabilities") or {}
        if "ALL" not in (capabilities.get("drop") or []):
            found.append(f"Capabilities: {where} does not drop ALL")
        added = set(capabilities.get("add") or []) - {"NET_BIND_SERVICE"}
        if added:
            found.append(f"Capabilities: {where} adds {sorted(added)}")
    return found


def pod_templates(doc: dict):
    """(where, pod metadata, pod spec) of every pod a workload manifest makes."""
    kind = doc.get("kind")
    name = f"{kind} {doc.get('metadata', {}).get('name')}"
    if kind in {"Deployment", "StatefulSet", "DaemonSet", "Job", "ReplicaSet",
                "ReplicationController"}:
        template = doc["spec"]["template"]
        yield name, template.get("metadata") or {}, template["spec"]
    elif kind == "CronJob":
        template = doc["spec"]["jobTemplate"]["spec"]["template"]
        yield name, template.get("metadata") or {}, template["spec"]
    elif kind == "Pod":
        yield name, doc.get("metadata") or {}, doc["spec"]
