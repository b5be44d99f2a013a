# Kata agent policy of deploy/k8s: one replica = one Kata TDX pod running
# the gateway (native sidecar) and vLLM. It travels in the pod's initdata
# (deploy/k8s/initdata.toml, key "policy.rego"), whose digest the host must
# put into MRCONFIGID, so a consumer who pins MRCONFIGID pins this text
# (deploy/k8s/README.md). The Kubernetes control plane and the host are not
# trusted: every request of the kata-agent API they may send is listed here,
# and what is not needed to run these two containers is refused.
#
# Sources (kata-containers repository):
#   src/agent/policy/src/policy.rs   the agent asks data.agent_policy.<message name>;
#                                    an undefined answer is an error (refused)
#   src/tools/genpolicy/rules.rego   request names, input field names, and the
#                                    network, copy-file and container-input rules
#                                    below (adapted; Apache-2.0, Microsoft Corporation)
#   src/agent/src/main.rs            a policy.rego in initdata replaces the default one
#
# `cgw measure --initdata` refuses an initdata whose policy.rego lacks the
# outright denials below (each name must appear exactly once, in its
# `default ... := false` line, nowhere else), so keep those names out of
# comments and rules.
#
# Not evaluated by a Rego engine in this repository (none is available to
# its tests); written in the dialect of genpolicy's rules.rego, which
# regorus, the agent's engine, runs.

package agent_policy

import future.keywords.every
import future.keywords.if
import future.keywords.in

# Refused outright. Exec (kubectl exec, and kubectl cp, which execs tar),
# the container's stdio (kubectl attach, kubectl logs: vLLM may log
# prompts), replacing this policy at run time, and the switch that would
# turn every refusal into a warning. With log reading refused, the agent
# still drains the pipes and returns empty data (kata-containers #10818).
default ExecProcessRequest := false
default ReadStreamRequest := false
default WriteStreamRequest := false
default CloseStdinRequest := false
default SetPolicyRequest := false
default AllowRequestsFailingPolicy := false

# Not needed by these containers: refused.
default AddSwapPathRequest := false
default AddSwapRequest := false
default GetDiagnosticDataRequest := false
default GetIPTablesRequest := false
default GetMetricsRequest := false
default ListInterfacesRequest := false
default ListRoutesRequest := false
default MemAgentCompactConfig := false
default MemAgentMemcgConfig := false
default MemHotplugByProbeRequest := false
default PauseContainerRequest := false
default PullImageRequest := false
default ReseedRandomDevRequest := false
default ResizeVolumeRequest := false
default ResumeContainerRequest := false
default SetGuestDateTimeRequest := false
default SetIPTablesRequest := false
default StartTracingRequest := false
default StopTracingRequest := false
default TtyWinResizeRequest := false
default UpdateContainerRequest := false
default UpdateEphemeralMountsRequest := false
default VolumeStatsRequest := false

# Lifecycle without data: the host can start, stop and observe the pod
# (it can always stop it by stopping the VM).
default DestroySandboxRequest := true
default GetOOMEventRequest := true
default GuestDetailsRequest := true
default OnlineCPUMemRequest := true
default RemoveContainerRequest := true
default RemoveStaleVirtiofsShareMountsRequest := true
default SignalProcessRequest := true
default StartContainerRequest := true
default StatsContainerRequest := true
default WaitProcessRequest := true

# Allowed only by the rules below.
default AddARPNeighborsRequest := false
default CopyFileRequest := false
default CreateContainerRequest := false
default CreateSandboxRequest := false
default UpdateInterfaceRequest := false
default UpdateRoutesRequest := false

# The pod, as deploy/k8s/statefulset.yaml describes it. JSON, so tests and
# tools read it as such. Fill in before `cgw measure`:
#   image      the digest you built and pushed (the zeros are placeholders,
#              the same as in statefulset.yaml)
#   image_env  the image's own environment:
#              docker image inspect --format '{{json .Config.Env}}' IMAGE@DIGEST
# then regenerate initdata.toml and the annotation
# (node --import tsx deploy/k8s/initdata.ts).
policy_data := {
  "namespace": "confidential-gateway",
  "sandbox_name": "^cgw-[0-9]+$",
  "hostname_env": "^HOSTNAME=cgw-[0-9]+$",
  "containers": {
    "gateway": {
      "image": "confidential-gateway@sha256:0000000000000000000000000000000000000000000000000000000000000000",
      "args": ["/bin/sh", "-c", "mount -t configfs none /sys/kernel/config 2>/dev/null; exec node /opt/cgw/cgw.mjs gateway --config /etc/cgw/gateway.json"],
      "env": ["NVIDIA_VISIBLE_DEVICES=all", "NVIDIA_DRIVER_CAPABILITIES=utility"],
      "image_env": ["CGW-FILL-IN the image's Env"],
      "env_names_any_value": [],
      "mounts": ["/etc/cgw/gateway.json", "/run/cgw"],
      "readonly_root": true,
      "privileged": true,
      "devices": false
    },
    "vllm": {
      "image": "cgw-vllm-model@sha256:0000000000000000000000000000000000000000000000000000000000000000",
      "args": ["python3", "-m", "vllm.entrypoints.openai.api_server", "--model", "/opt/model", "--served-model-name", "model", "--host", "127.0.0.1", "--port", "8000"],
      "env": [],
      "image_env": ["CGW-FILL-IN the image's Env"],
      "env_names_any_value": [],
      "mounts": [],
      "readonly_root": false,
      "privileged": false,
      "devices": true
    }
  },
  "standard_mounts": ["/proc", "/dev", "/dev/pts", "/dev/mqueue", "/sys", "/sys/fs/cgroup", "/dev/shm", "/etc/hosts", "/etc/hostname", "/etc/resolv.conf", "/dev/termination-log"],
  "mount_types": ["bind", "proc", "tmpfs", "devpts", "mqueue", "sysfs", "cgroup", "cgroup2"],
  "bind_sources": ["^/run/kata-containers/shared/containers(/passthrough)?/(watchable/)?[a-z0-9]{64}-[a-z0-9]{16}-", "^/run/kata-containers/sandbox/shm$", "^/run/kata-containers/sandbox/ephemeral/"],
  "copy_file_path": "^/run/kata-containers/shared/containers(/passthrough)?/(watchable/)?[a-z0-9]{64}-[a-z0-9]{16}-",
  "forbidden_device_names": ["lo"],
  "forbidden_route_sources": ["^(?:0{0,4}:){0,7}0{0,3}1$", "^127\\.(?:[0-9]{1,3}\\.){2}[0-9]{1,3}$"],
  "forbidden_arp_cidrs": ["^127\\.(?:[0-9]{1,3}\\.){2}[0-9]{1,3}$"],
  "forbidden_hw_addrs": ["00:00:00:00:00:00"]
}

S_NAME_KEY := "io.kubernetes.cri.sandbox-name"
S_NAMESPACE_KEY := "io.kubernetes.cri.sandbox-namespace"
C_NAME_KEY := "io.kubernetes.cri.container-name"
C_TYPE_KEY := "io.kubernetes.cri.container-type"
KATA_TYPE_KEY := "io.katacontainers.pkg.oci.container_type"

# The pod sandbox: no guest hooks, no kernel modules, no shared PID
# namespace, and no storage but the sandbox's /dev/shm.
CreateSandboxRequest if {
  count(input.guest_hook_path) == 0
  count(input.kernel_modules) == 0
  input.sandbox_pidns == false
  every s in input.storages {
    s.driver == "ephemeral"
    s.mount_point == "/run/kata-containers/sandbox/shm"
  }
}

# The pause container of this pod: the agent runs the pause binary of the
# guest image for it (src/agent/src/confidential_data_hub/image.rs).
CreateContainerRequest if {
  common_container_input
  i_oci := input.OCI
  i_oci.Annotations[C_TYPE_KEY] == "sandbox"
  i_oci.Annotations[KATA_TYPE_KEY] == "pod_sandbox"
  i_oci.Process.Args == ["/pause"]
  count(input.devices) == 0
  count(input.storages) == 1
  input.storages[0].driver == "image_guest_pull"
  allow_mounts(i_oci.Mounts, [])
}

# The gateway and vLLM, nothing else: the image pulled inside the TD (by
# digest), the whole command line, the environment, the mounts, the root
# file system's mode, privileges and devices as the pod spec has them.
CreateContainerRequest if {
  common_container_input
  i_oci := input.OCI
  i_oci.Annotations[C_TYPE_KEY] == "container"
  i_oci.Annotations[KATA_TYPE_KEY] == "pod_container"
  p := policy_data.containers[i_oci.Annotations[C_NAME_KEY]]

  i_oci.Process.Args == p.args
  i_oci.Process.Terminal == false
  i_oci.Root.Readonly == p.readonly_root
  allow_env(p, i_oci.Process.Env)
  allow_privileges(p, i_oci.Process)
  allow_devices(p, input.devices)
  allow_container_storages(p, input.storages)
  allow_mounts(i_oci.Mounts, p.mounts)
}

# What every container request must satisfy: this pod (namespace, a
# StatefulSet replica name), nothing the host could use to run code of its
# own in the TD (OCI hooks, user name lookups), the checks genpolicy's
# allow_create_container_input makes.
common_container_input if {
  i_oci := input.OCI
  i_oci.Annotations[S_NAMESPACE_KEY] == policy_data.namespace
  regex.match(policy_data.sandbox_name, i_oci.Annotations[S_NAME_KEY])
  input.sandbox_pidns == false
  count(input.shared_mounts) == 0
  is_null(input.string_user)
  is_null(i_oci.Hooks)
  is_null(i_oci.Solaris)
  is_null(i_oci.Windows)
  i_linux := i_oci.Linux
  count(i_linux.GIDMappings) == 0
  count(i_linux.MountLabel) == 0
  count(i_linux.Resources.Devices) == 0
  count(i_linux.RootfsPropagation) == 0
  count(i_linux.UIDMappings) == 0
  is_null(i_linux.IntelRdt)
  is_null(i_linux.Seccomp)
  count(i_oci.Process.SelinuxLabel) == 0
  count(i_oci.Process.User.Username) == 0
}

# Every variable is the pod spec's (exact), the image's (exact), a named
# secret (any value), or the replica's HOSTNAME; every pod spec variable is
# there. A variable such as LD_PRELOAD or PYTHONPATH that none of these
# names is refused.
allow_env(p, i_env) if {
  every e in i_env {
    allowed_env_entry(p, e)
  }
  every e in p.env {
    e in i_env
  }
}

allowed_env_entry(p, e) if {
  e in p.env
}

allowed_env_entry(p, e) if {
  e in p.image_env
}

allowed_env_entry(p, e) if {
  regex.match(policy_data.hostname_env, e)
}

allowed_env_entry(p, e) if {
  some name in p.env_names_any_value
  startswith(e, concat("", [name, "="]))
}

# vLLM is not privileged: no CAP_SYS_ADMIN (it could otherwise reach the
# TD's quote and RTMR interfaces) and no privilege escalation.
allow_privileges(p, i_process) if {
  p.privileged == true
}

allow_privileges(p, i_process) if {
  p.privileged == false
  i_process.NoNewPrivileges == true
  not "CAP_SYS_ADMIN" in i_process.Capabilities.Bounding
  not "CAP_SYS_ADMIN" in i_process.Capabilities.Effective
  not "CAP_SYS_ADMIN" in i_process.Capabilities.Permitted
}

# Only vLLM gets a device (its passthrough GPU).
allow_devices(p, i_devices) if {
  p.devices == true
}

allow_devices(p, i_devices) if {
  p.devices == false
  count(i_devices) == 0
}

# Exactly one image, pulled inside the TD by the reference the policy
# names (the registry host may be spelled out by containerd); besides it
# only in-memory emptyDirs and files copied into the shared directory.
allow_container_storages(p, i_storages) if {
  pulls := [s | some s in i_storages; s.driver == "image_guest_pull"]
  count(pulls) == 1
  image_matches(p.image, pulls[0].source)
  every s in i_storages {
    allowed_storage(s)
  }
}

allowed_storage(s) if {
  s.driver == "image_guest_pull"
}

allowed_storage(s) if {
  s.driver == "ephemeral"
  startswith(s.mount_point, "/run/kata-containers/sandbox/ephemeral/")
}

allowed_storage(s) if {
  s.driver == "local"
  regex.match(policy_data.copy_file_path, s.mount_point)
}

image_matches(p_image, i_source) if {
  i_source == p_image
}

image_matches(p_image, i_source) if {
  endswith(i_source, concat("", ["/", p_image]))
}

# Mounts only where the pod spec and the container runtime put them, of
# kernel file systems or bind mounts of what the pod brings (copied files,
# /dev/shm, in-memory emptyDirs): no host disk, nothing over the image's code.
allow_mounts(i_mounts, p_mounts) if {
  every m in i_mounts {
    allowed_mount_destination(m.destination, p_mounts)
    m.type_ in policy_data.mount_types
    allowed_mount_source(m)
  }
}

allowed_mount_destination(d, p_mounts) if {
  d in policy_data.standard_mounts
}

allowed_mount_destination(d, p_mounts) if {
  d in p_mounts
}

allowed_mount_source(m) if {
  m.type_ != "bind"
}

allowed_mount_source(m) if {
  m.type_ == "bind"
  some r in policy_data.bind_sources
  regex.match(r, m.source)
}

# The runtime copies the pod's files (ConfigMap, /etc/hosts, ...) into the
# TD with these requests (the TDX runtime classes share no file system with
# the host): only into the shared container directory, from which the
# mounts above are made; no traversal, relative symlinks only.
CopyFileRequest if {
  input.file_type in ["Regular", "Directory"]
  copy_path_allowed(input.path)
}

CopyFileRequest if {
  input.file_type == "Symlink"
  copy_path_allowed(input.path)
  regex.match(concat("", [policy_data.copy_file_path, ".*/.+"]), input.path)
  not regex.match("(^|/)\\.\\.($|/)", input.symlink_target)
  not startswith(input.symlink_target, "/")
}

copy_path_allowed(path) if {
  not regex.match("(^|/)\\.\\.($|/)", path)
  regex.match(policy_data.copy_file_path, path)
}

# Networking: the pod's interface and routes, never the loopback on which
# the gateway talks to vLLM in plaintext.
UpdateInterfaceRequest if {
  i := input.interface
  # IFF_NOARP (128) is the only flag the runtime sets.
  bits.and(i.raw_flags, bits.negate(128)) == 0
  not i.name in policy_data.forbidden_device_names
  not i.hwAddr in policy_data.forbidden_hw_addrs
}

UpdateRoutesRequest if {
  every r in input.routes.Routes {
    not r.device in policy_data.forbidden_device_names
    every p in policy_data.forbidden_route_sources {
      not regex.match(p, r.source)
    }
  }
}

AddARPNeighborsRequest if {
  every n in input.neighbors.ARPNeighbors {
    not n.device in policy_data.forbidden_device_names
    n.toIPAddress.mask == ""
    every c in policy_data.forbidden_arp_cidrs {
      not regex.match(c, n.toIPAddress.address)
    }
    n.state in [2, 128]
    bits.or(n.flags, 136) == 136
  }
}
