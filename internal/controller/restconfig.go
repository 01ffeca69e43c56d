package controller

import (
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// RESTConfig is the client configuration of a podnet daemon: the
// kubeconfig at path, or the in-cluster configuration (a DaemonSet's or a
// Deployment's service account) when path is empty; userAgent names the
// daemon in the API server's logs and metrics.
func RESTConfig(path, userAgent string) (*rest.Config, error) {
	var rc *rest.Config
	var err error
	if path == "" {
		rc, err = rest.InClusterConfig()
	} else {
		rc, err = clientcmd.BuildConfigFromFlags("", path)
	}
	if err != nil {
		return nil, err
	}
	rc.UserAgent = userAgent
	return rc, nil
}
