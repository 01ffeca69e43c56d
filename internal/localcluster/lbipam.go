package localcluster

import (
	"context"
	"fmt"

	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"github.com/podnet/podnet/internal/localcluster/addons"
	"github.com/podnet/podnet/internal/localcluster/controlplane"
)

// deployLBIPAM installs the LoadBalancerIPPool CRD and the default pool
// and deploys `podnet controller` as a Deployment (package addons). It
// runs as a pod, not as a root-namespace process: like the cluster DNS it
// only talks to the API server, through the node's network, and a pod
// needs no guard of its own (what a pod sends is confined by its node);
// it is also how it runs in a real cluster.
func deployLBIPAM(ctx context.Context, cfg *Config, client kubernetes.Interface, o UpOptions) error {
	o.say("deploying LoadBalancer IPAM: CRD loadbalancerippools.lb.podnet.io, pool %q = %s, Deployment %s/%s",
		addons.DefaultPool, cfg.LBPool, addons.LBNamespace, addons.LBDeployment)
	rc, err := (&controlplane.Config{}).RESTConfig(AdminKubeconfigPath(cfg.StateDir))
	if err != nil {
		return fmt.Errorf("LoadBalancer IPAM: %w", err)
	}
	dyn, err := dynamic.NewForConfig(rc)
	if err != nil {
		return fmt.Errorf("LoadBalancer IPAM: %w", err)
	}
	return addons.DeployLBIPAM(ctx, cfg, client, dyn, o.Podnet)
}
