package podruntime

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/containernetworking/cni/libcni"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/tools/record"

	"github.com/podnet/podnet/internal/controller"
	"github.com/podnet/podnet/internal/netns"
	"github.com/podnet/podnet/internal/proc"
)

// Runtime runs the pods of one node.
type Runtime struct {
	// set at construction, read-only
	cfg    Config
	log    *slog.Logger
	client kubernetes.Interface
	// watchClient is the informers' client, whose reads wait out an API
	// server that refuses connections (controller.InformerConfig); nil:
	// client.
	watchClient kubernetes.Interface
	cni         *libcni.CNIConfig
	svcLister   corelisters.ServiceLister
	probeClient *http.Client
	apiPort     int // of the kubelet API; 0 when not served
	// recorder records the pods' Events (events.go); nil: none.
	recorder record.EventRecorder

	api apiState // pods as the kubelet API sees them

	// mu guards workers.
	mu      sync.Mutex
	workers map[types.UID]*podWorker
}

// Run registers the node and runs its pods until ctx ends.
func Run(ctx context.Context, cfg Config) error {
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.NodeName == "" || !cfg.NodeIP.IsValid() || cfg.StateDir == "" || cfg.Self == "" {
		return errors.New("podruntime: node name, node IP, state dir and the podnet binary are required")
	}
	if cfg.ClusterDomain == "" {
		cfg.ClusterDomain = "cluster.local"
	}
	rc, err := clientcmd.BuildConfigFromFlags("", cfg.Kubeconfig)
	if err != nil {
		return fmt.Errorf("podruntime: %w", err)
	}
	rc.UserAgent = "podnet-runtime/" + cfg.NodeName
	rc.QPS, rc.Burst = 50, 100
	client, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return err
	}
	watchClient, err := kubernetes.NewForConfig(controller.InformerConfig(rc, cfg.Log))
	if err != nil {
		return err
	}
	r := &Runtime{
		cfg: cfg, log: cfg.Log, client: client, watchClient: watchClient,
		cni:         libcni.NewCNIConfigWithCacheDir([]string{cfg.CNIBinDir}, filepath.Join(cfg.StateDir, "cni-cache"), nil),
		workers:     map[types.UID]*podWorker{},
		probeClient: newProbeClient(),
		recorder:    newEventRecorder(ctx, client, cfg.NodeName),
	}
	r.cleanupStale(ctx)
	if r.apiPort, err = r.startKubeletAPI(ctx); err != nil {
		return err
	}
	for {
		err := r.registerNode(ctx)
		if err == nil {
			break
		}
		r.log.Warn("node registration failed; retrying", "err", err)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(2 * time.Second):
		}
	}
	_ = renewLease(ctx, client, cfg.NodeName)
	go r.heartbeat(ctx)

	if err := r.watch(ctx, cache.ResourceEventHandlerFuncs{
		AddFunc:    func(o any) { r.dispatch(ctx, o) },
		UpdateFunc: func(_, o any) { r.dispatch(ctx, o) },
		DeleteFunc: func(o any) { r.dispatchDelete(o) },
	}); err != nil {
		return err
	}
	r.log.Info("pod runtime running", "node", cfg.NodeName, "ip", cfg.NodeIP)
	<-ctx.Done()
	r.mu.Lock()
	workers := make([]*podWorker, 0, len(r.workers))
	for _, w := range r.workers {
		workers = append(workers, w)
	}
	r.mu.Unlock()
	for _, w := range workers {
		<-w.done
	}
	return nil
}

// watch starts the Service informer (for the containers' service
// variables) and, once it has synced, the informer of the pods bound to
// this node, whose events go to h; it returns once both have synced. The
// order matters: a pod event starts containers, and a container started
// before the Service cache is complete would miss the *_SERVICE_HOST
// variables of existing Services (the kubelet waits for its Service cache
// too).
func (r *Runtime) watch(ctx context.Context, h cache.ResourceEventHandler) error {
	wc := r.watchClient
	if wc == nil {
		wc = r.client
	}
	svcFactory := informers.NewSharedInformerFactory(wc, 10*time.Minute)
	services := svcFactory.Core().V1().Services()
	r.svcLister = services.Lister()
	podFactory := informers.NewSharedInformerFactoryWithOptions(wc, 10*time.Minute,
		informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.FieldSelector = fields.OneTermEqualSelector("spec.nodeName", r.cfg.NodeName).String()
		}))
	podInformer := podFactory.Core().V1().Pods().Informer()
	if _, err := podInformer.AddEventHandler(h); err != nil {
		return fmt.Errorf("podruntime: pod handler: %w", err)
	}
	svcFactory.Start(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), services.Informer().HasSynced) {
		return ctx.Err()
	}
	podFactory.Start(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), podInformer.HasSynced) {
		return ctx.Err()
	}
	return nil
}

// newProbeClient is the HTTP client of httpGet probes: like the kubelet's,
// it does not verify certificates and does not follow redirects.
func newProbeClient() *http.Client {
	return &http.Client{
		Transport:     &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, DisableKeepAlives: true}, //nolint:gosec // probes, as the kubelet's
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

func (r *Runtime) dispatch(ctx context.Context, o any) {
	pod, ok := o.(*v1.Pod)
	if !ok {
		return
	}
	r.mu.Lock()
	w := r.workers[pod.UID]
	if w == nil {
		if pod.Status.Phase == v1.PodSucceeded || pod.Status.Phase == v1.PodFailed {
			if pod.DeletionTimestamp == nil {
				r.mu.Unlock()
				return // finished before this runtime started
			}
		}
		w = &podWorker{r: r, ctx: ctx, updates: make(chan *v1.Pod, 1), events: make(chan event, 16),
			pod: pod, containers: map[string]*container{}, done: make(chan struct{})}
		r.workers[pod.UID] = w
		go func() {
			w.run()
			r.mu.Lock()
			delete(r.workers, pod.UID)
			r.mu.Unlock()
		}()
	}
	r.mu.Unlock()
	w.update(pod)
}

func (r *Runtime) dispatchDelete(o any) {
	if t, ok := o.(cache.DeletedFinalStateUnknown); ok {
		o = t.Obj
	}
	pod, ok := o.(*v1.Pod)
	if !ok {
		return
	}
	r.mu.Lock()
	w := r.workers[pod.UID]
	r.mu.Unlock()
	if w != nil {
		w.update(nil)
	}
}

// pokeAll wakes every worker (e.g. when the network became ready).
// ContainersDir is where a runtime with state directory stateDir records
// its container processes (internal/proc records).
func ContainersDir(stateDir string) string { return filepath.Join(stateDir, "containers") }

func (r *Runtime) containersDir() string { return ContainersDir(r.cfg.StateDir) }

func (r *Runtime) pokeAll() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, w := range r.workers {
		select {
		case w.events <- event{kind: evPoke}:
		default:
		}
	}
}

// cleanupStale removes the sandboxes a previous runtime left: their
// processes died with it (parent-death signal), so every pod is rebuilt.
func (r *Runtime) cleanupStale(ctx context.Context) {
	// Containers of a previous runtime that outlived it are ended first
	// (by recorded pid and start time): every pod is rebuilt.
	if err := proc.StopAll(r.containersDir(), 5*time.Second); err != nil {
		r.log.Error("ending containers of a previous runtime", "err", err)
	}
	dirs, _ := filepath.Glob(filepath.Join(r.cfg.StateDir, "pods", "*"))
	list, lerr := r.loadConflist()
	for _, d := range dirs {
		parts := strings.SplitN(filepath.Base(d), "_", 3)
		if len(parts) != 3 {
			continue
		}
		uid := parts[2]
		name := NetNSName(r.cfg.NetNSPrefix, uid)
		if lerr == nil {
			pod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: parts[0], Name: parts[1], UID: types.UID(uid)}}
			_ = r.cni.DelNetworkList(ctx, list, r.runtimeConf(pod, netns.Path(name)))
		}
		_ = netns.Delete(name)
		_ = os.RemoveAll(d)
	}
	if lerr == nil {
		_ = r.cni.GCNetworkList(ctx, list, &libcni.GCArgs{})
	}
}
