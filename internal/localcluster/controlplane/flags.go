package controlplane

import "strconv"

// The command lines of the control-plane processes. They are pure functions
// of the configuration and the files, so tests can read them without
// starting anything.

// etcdArgs: a single member on loopback, plain HTTP (the contract: the
// state directory is root-only and nothing but the API server talks to it).
func etcdArgs(cfg *Config, f *Files) []string {
	client := etcdURL(cfg.EtcdPort)
	peer := etcdURL(cfg.EtcdPeerPort)
	return []string{
		"--name=" + cfg.ClusterName,
		"--data-dir=" + f.EtcdDataDir,
		"--listen-client-urls=" + client,
		"--advertise-client-urls=" + client,
		"--listen-peer-urls=" + peer,
		"--initial-advertise-peer-urls=" + peer,
		"--initial-cluster=" + cfg.ClusterName + "=" + peer,
		"--initial-cluster-state=new",
		"--log-level=warn",
	}
}

func apiServerArgs(cfg *Config, f *Files) []string {
	args := []string{
		"--advertise-address=" + cfg.APIAddress.String(),
		"--bind-address=" + cfg.APIAddress.String(),
		"--secure-port=" + strconv.Itoa(cfg.APIPort),
		"--etcd-servers=" + etcdURL(cfg.EtcdPort),
		"--service-cluster-ip-range=" + cfg.ServiceCIDR.String(),
		"--tls-cert-file=" + f.APIServerCert,
		"--tls-private-key-file=" + f.APIServerKey,
		"--client-ca-file=" + f.CACert,
		"--service-account-issuer=" + ServiceAccountIssuer,
		"--service-account-key-file=" + f.SAPub,
		"--service-account-signing-key-file=" + f.SAKey,
		"--authorization-mode=Node,RBAC",
		"--enable-admission-plugins=NodeRestriction",
		"--allow-privileged=true",
		"--profiling=false",
		// The nodes' kubelet API (kubectl exec, attach, logs,
		// port-forward, nodes/proxy): the API server dials a node's
		// InternalIP only (the default tries the Hostname first, and
		// resolving a node name asks this machine's resolver, off the
		// machine: the guard drops it, package guard), verifies its serving certificate against the
		// cluster CA and presents KubeletClientUser.
		"--kubelet-client-certificate=" + f.KubeletClientCert,
		"--kubelet-client-key=" + f.KubeletClientKey,
		"--kubelet-certificate-authority=" + f.CACert,
		"--kubelet-preferred-address-types=InternalIP",
	}
	if cfg.APIAddress.IsLoopback() {
		// v1.37 exits at start when the endpoint reconciler would have to
		// publish a loopback address ("cannot use public IP 127.0.0.1 with
		// endpoint reconciler").
		args = append(args, "--endpoint-reconciler-type=none")
	}
	return args
}

func controllerManagerArgs(cfg *Config, f *Files, port int) []string {
	return []string{
		"--kubeconfig=" + f.ControllerManagerKubeconfig,
		"--authentication-kubeconfig=" + f.ControllerManagerKubeconfig,
		"--authorization-kubeconfig=" + f.ControllerManagerKubeconfig,
		// The client CA comes from --client-ca-file; looking it up in the
		// cluster only finds the missing front-proxy CA and logs an error
		// about it every few seconds.
		"--authentication-skip-lookup=true",
		"--bind-address=127.0.0.1",
		"--secure-port=" + strconv.Itoa(port),
		"--tls-cert-file=" + f.ControllerManagerServingCert,
		"--tls-private-key-file=" + f.ControllerManagerServingKey,
		"--client-ca-file=" + f.CACert,
		"--root-ca-file=" + f.CACert,
		"--service-account-private-key-file=" + f.SAKey,
		"--cluster-signing-cert-file=" + f.CACert,
		"--cluster-signing-key-file=" + f.CAKey,
		"--cluster-name=" + cfg.ClusterName,
		"--allocate-node-cidrs=true",
		"--cluster-cidr=" + cfg.PodCIDR.String(),
		"--node-cidr-mask-size=" + strconv.Itoa(cfg.NodeCIDRMaskSize),
		"--service-cluster-ip-range=" + cfg.ServiceCIDR.String(),
		"--use-service-account-credentials=true",
		"--leader-elect=false",
		"--controllers=*",
		"--profiling=false",
		// With --use-service-account-credentials every controller first
		// gets its ServiceAccount and a token: ~150 requests at the
		// default 20 QPS took 6 s of the start; local, so no need to
		// throttle.
		"--kube-api-qps=200",
		"--kube-api-burst=400",
	}
}

func schedulerArgs(f *Files, port int) []string {
	return []string{
		"--config=" + f.SchedulerConfig, // kubeconfig and leader election
		"--authentication-kubeconfig=" + f.SchedulerKubeconfig,
		"--authorization-kubeconfig=" + f.SchedulerKubeconfig,
		"--authentication-skip-lookup=true", // as for kube-controller-manager
		"--bind-address=127.0.0.1",
		"--secure-port=" + strconv.Itoa(port),
		"--tls-cert-file=" + f.SchedulerServingCert,
		"--tls-private-key-file=" + f.SchedulerServingKey,
		"--client-ca-file=" + f.CACert,
	}
}
