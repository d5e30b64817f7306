//go:build linux

package lab

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/pftap/pftap/internal/nsenter"
	"github.com/pftap/pftap/internal/pki"
)

// Users of a lab run by the real kube-apiserver (its token file): an
// administrator (system:masters), and a user RBAC lets get pods and
// pods/portforward but not create it (Config.DenyPortForward).
const (
	realAdminUser   = "pftap-lab-admin"
	realLimitedUser = "pftap-lab-get-only"
	labNodeName     = "pftap-lab-node"
	etcdClientURL   = "http://127.0.0.1:2379"
)

// KubeAPIServerVersion runs `BIN --version` and returns the release it
// says ("Kubernetes v1.37.2").
func KubeAPIServerVersion(bin string) (Version, string, error) {
	return binaryRelease(bin, "--apiserver", "kube-apiserver")
}

// binaryRelease runs `BIN --version` of one of upstream's binaries (what,
// given by flag) and returns the release it says.
func binaryRelease(bin, flag, what string) (Version, string, error) {
	out, err := exec.Command(bin, "--version").CombinedOutput()
	first, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	if err != nil {
		if first != "" {
			return Version{}, "", fmt.Errorf("%s %s: %v: %s", flag, bin, err, first)
		}
		return Version{}, "", fmt.Errorf("%s %s: %v", flag, bin, err)
	}
	m := regexp.MustCompile(`Kubernetes (v1\.\d+\.\S+)`).FindStringSubmatch(string(out))
	if m == nil {
		return Version{}, "", fmt.Errorf("%s %s: not a %s (its --version said %q)", flag, bin, what, first)
	}
	// The kube-apiserver and the kubelet say the same version: their
	// usage tells them apart.
	help, _ := exec.Command(bin, "--help").CombinedOutput()
	if !strings.Contains(string(help), "Usage:\n  "+what+" [flags]") {
		return Version{}, "", fmt.Errorf("%s %s: not a %s (its --help does not say \"%s [flags]\")", flag, bin, what, what)
	}
	v, ok := ParseServerVersion(m[1])
	if !ok {
		return Version{}, "", fmt.Errorf("%s %s is Kubernetes %s, which the lab does not know (%s to %s)", flag, bin, m[1], OldestVersion, NewestVersion)
	}
	return v, m[1], nil
}

// EtcdInstalled says in one line what to install when etcd is missing.
func EtcdInstalled() error {
	if _, err := exec.LookPath("etcd"); err != nil {
		return errors.New("--apiserver runs the real kube-apiserver on Debian's etcd, and etcd is missing: apt-get install etcd-server")
	}
	return nil
}

// realAPI is the lab's control plane when it is the real kube-apiserver:
// etcd and kube-apiserver in the control plane's namespace, the lab's CA
// for clients, kubelet and service accounts, RBAC on, and the node loop
// that runs the pods bound to the lab's node (pftap's agent), as a kubelet
// would.
type realAPI struct {
	cs      *kubernetes.Clientset
	version string
	log     string
	mu      sync.Mutex
	running map[string]func() // ns/name of the pods the node runs → stop
	podLog  []string
}

// startRealAPI starts etcd and kube-apiserver, registers the node, creates
// the pod through the API and runs the node's pod loop.
func (l *Lab) startRealAPI(ctx context.Context, ca *pki.CA, a addressing, acert, kubeletClient, kubeletServing tls.Certificate, rt *runtime) error {
	cfg := l.cfg
	if err := EtcdInstalled(); err != nil {
		return err
	}
	_, gitVersion, err := KubeAPIServerVersion(cfg.APIServerBinary)
	if err != nil {
		return err
	}
	r := &realAPI{version: gitVersion, log: filepath.Join(l.dir, "kube-apiserver.log"), running: map[string]func(){}}
	l.realAPI = r
	dir := filepath.Join(l.dir, "kube-apiserver")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	file := func(name string, data []byte) (string, error) {
		p := filepath.Join(dir, name)
		return p, os.WriteFile(p, data, 0o600)
	}
	caFile, err := file("ca.crt", ca.PEM)
	if err != nil {
		return err
	}
	pemPair := func(name string, c tls.Certificate) (string, string, error) {
		cp, kp, err := pki.EncodePEM(c)
		if err != nil {
			return "", "", err
		}
		cf, err := file(name+".crt", cp)
		if err != nil {
			return "", "", err
		}
		kf, err := file(name+".key", kp)
		return cf, kf, err
	}
	servingCert, servingKey, err := pemPair("serving", acert)
	if err != nil {
		return err
	}
	kcCert, kcKey, err := pemPair("kubelet-client", kubeletClient)
	if err != nil {
		return err
	}
	saKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	priv, _ := x509.MarshalPKCS8PrivateKey(saKey)
	pub, _ := x509.MarshalPKIXPublicKey(&saKey.PublicKey)
	saPriv, err := file("sa.key", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: priv}))
	if err != nil {
		return err
	}
	saPub, err := file("sa.pub", pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}))
	if err != nil {
		return err
	}
	adminToken, limitedToken, nodeToken := NewToken(), NewToken(), NewToken()
	users := fmt.Sprintf("%s,%s,%s,system:masters\n%s,%s,%s\n", adminToken, realAdminUser, realAdminUser, limitedToken, realLimitedUser, realLimitedUser)
	if cfg.KubeletBinary != "" {
		// The real kubelet's identity: the Node authorizer's node.
		users += fmt.Sprintf("%s,%s,%s,system:nodes\n", nodeToken, realNodeUser, realNodeUser)
	}
	tokens, err := file("tokens.csv", []byte(users))
	if err != nil {
		return err
	}
	l.cfg.Token = adminToken
	if cfg.DenyPortForward {
		l.cfg.Token = limitedToken
	}

	// etcd, then the apiserver, in the control plane's namespace.
	if _, err := l.startInNetns(l.CPNetns, "etcd", "etcd", "--name", "pftap-lab", "--data-dir", filepath.Join(l.dir, "etcd"),
		"--listen-client-urls", etcdClientURL, "--advertise-client-urls", etcdClientURL,
		"--listen-peer-urls", "http://127.0.0.1:2380", "--initial-advertise-peer-urls", "http://127.0.0.1:2380",
		"--initial-cluster", "pftap-lab=http://127.0.0.1:2380", "--log-level", "warn"); err != nil {
		return err
	}
	services := netip.PrefixFrom(netip.AddrFrom4(func() [4]byte { b := a.subnet.Masked().Addr().As4(); b[3] = 240; return b }()), 28)
	exited, err := l.startInNetns(l.CPNetns, "kube-apiserver", cfg.APIServerBinary,
		"--etcd-servers="+etcdClientURL,
		"--bind-address="+a.cp.String(), "--advertise-address="+a.cp.String(), fmt.Sprintf("--secure-port=%d", APIServerPort),
		"--tls-cert-file="+servingCert, "--tls-private-key-file="+servingKey, "--cert-dir="+dir,
		"--client-ca-file="+caFile, "--token-auth-file="+tokens,
		"--authorization-mode=Node,RBAC", "--allow-privileged=true",
		"--kubelet-client-certificate="+kcCert, "--kubelet-client-key="+kcKey, "--kubelet-certificate-authority="+caFile,
		"--kubelet-preferred-address-types=InternalIP",
		"--service-account-issuer=https://kubernetes.default.svc", "--service-account-key-file="+saPub, "--service-account-signing-key-file="+saPriv,
		"--service-cluster-ip-range="+services.String(), "--endpoint-reconciler-type=none", "--profiling=false")
	if err != nil {
		return err
	}
	if err := l.writeState(); err != nil {
		return err
	}
	rc := &rest.Config{Host: "https://" + netip.AddrPortFrom(a.cp, APIServerPort).String(), BearerToken: adminToken,
		TLSClientConfig: rest.TLSClientConfig{CAData: ca.PEM}, Dial: nsDialer(l.CPNetns), QPS: 100, Burst: 200}
	if r.cs, err = kubernetes.NewForConfig(rc); err != nil {
		return err
	}
	if err := r.waitReady(ctx, exited); err != nil {
		return err
	}
	if err := r.bootstrap(ctx, l, a); err != nil {
		return err
	}
	if cfg.KubeletBinary != "" {
		// The real kubelet: it registers the node, runs the pod (and
		// any other bound to it) through containerd.
		bctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		defer cancel()
		if err := r.bootstrapForKubelet(bctx, l); err != nil {
			return err
		}
		if err := l.startRealKubelet(bctx, ca, a, kubeletServing, nodeToken); err != nil {
			return err
		}
		if _, err := r.waitNodeReady(bctx, l.kubelet); err != nil {
			return err
		}
		return r.runAppPod(bctx, l)
	}
	nodeCtx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); r.runNode(nodeCtx, l, a, rt) }()
	l.closers = append(l.closers, func() error { stop(); <-done; r.stopAll(); return nil })
	return nil
}

// startInNetns runs argv in a namespace (nsenter --net), its output in
// LABDIR/NAME.log, in its own process group, killed if pftap dies.
func (l *Lab) startInNetns(ns, name string, argv ...string) (<-chan struct{}, error) {
	logf, err := os.OpenFile(filepath.Join(l.dir, name+".log"), os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command("nsenter", append([]string{"--net=" + nsenter.Path(ns)}, argv...)...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	logf.Close()
	l.pids = append(l.pids, cmd.Process.Pid)
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	l.closers = append(l.closers, func() error {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
		}
		return nil
	})
	return exited, nil
}

// waitReady waits for /readyz.
func (r *realAPI) waitReady(ctx context.Context, exited <-chan struct{}) error {
	deadline := time.Now().Add(60 * time.Second)
	var last error
	for {
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		body, err := r.cs.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(cctx)
		cancel()
		if err == nil && strings.TrimSpace(string(body)) == "ok" {
			return nil
		}
		last = err
		select {
		case <-exited:
			return fmt.Errorf("kube-apiserver exited at start%s", lastLines(r.log, "", 2))
		default:
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("kube-apiserver was not ready within 60s: %v%s", last, lastLines(r.log, "", 2))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// bootstrap does what a cluster's other components would have done: the
// default service account (no controller-manager), the node (a kubelet
// registers it, with the features it declares), RBAC for the limited user,
// and the pod, created through the API and reported running.
func (r *realAPI) bootstrap(ctx context.Context, l *Lab, a addressing) error {
	cfg := l.cfg
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cs := r.cs
	for {
		_, err := cs.CoreV1().Namespaces().Get(ctx, cfg.Namespace, metav1.GetOptions{})
		if err == nil {
			break
		}
		if apierrors.IsNotFound(err) && cfg.Namespace != "default" {
			if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: cfg.Namespace}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
				return fmt.Errorf("namespace %s: %w", cfg.Namespace, err)
			}
			continue
		}
		if ctx.Err() != nil {
			return fmt.Errorf("namespace %s: %w", cfg.Namespace, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if _, err := cs.CoreV1().ServiceAccounts(cfg.Namespace).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default"}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("service account default: %w", err)
	}
	// The limited user: get on pods and pods/portforward, not create.
	role := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "pftap-lab-portforward-get-only"}, Rules: []rbacv1.PolicyRule{
		{APIGroups: []string{""}, Resources: []string{"pods", "pods/portforward"}, Verbs: []string{"get", "list", "watch"}}}}
	if _, err := cs.RbacV1().Roles(cfg.Namespace).Create(ctx, role, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("role: %w", err)
	}
	rb := &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "pftap-lab-portforward-get-only"},
		RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: role.Name},
		Subjects: []rbacv1.Subject{{APIGroup: "rbac.authorization.k8s.io", Kind: "User", Name: realLimitedUser}}}
	if _, err := cs.RbacV1().RoleBindings(cfg.Namespace).Create(ctx, rb, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("role binding: %w", err)
	}

	if cfg.KubeletBinary != "" {
		return nil // the real kubelet registers the node; the pod is made once it is Ready
	}
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: labNodeName, Labels: map[string]string{"kubernetes.io/hostname": labNodeName, "kubernetes.io/os": "linux"}}}
	created, err := cs.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("node %s: %w", labNodeName, err)
	}
	now := metav1.Now()
	created.Status = corev1.NodeStatus{
		Addresses:       []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: a.node.String()}, {Type: corev1.NodeHostName, Address: labNodeName}},
		DaemonEndpoints: corev1.NodeDaemonEndpoints{KubeletEndpoint: corev1.DaemonEndpoint{Port: KubeletPort}},
		NodeInfo:        corev1.NodeSystemInfo{KubeletVersion: cfg.Kubelet.GitVersion(), OperatingSystem: "linux", Architecture: "amd64", ContainerRuntimeVersion: runtimeVersion(cfg)},
		Conditions:      []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady", LastHeartbeatTime: now, LastTransitionTime: now}},
	}
	if cfg.declaresWebSockets() {
		created.Status.DeclaredFeatures = []string{FeatureExtendWebSocketsToKubelet}
	}
	if _, err := cs.CoreV1().Nodes().UpdateStatus(ctx, created, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("node %s status: %w", labNodeName, err)
	}

	no := false
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: cfg.Pod, Namespace: cfg.Namespace, Labels: map[string]string{"app": cfg.Pod}},
		Spec: corev1.PodSpec{NodeName: labNodeName, AutomountServiceAccountToken: &no,
			Containers: []corev1.Container{{Name: "app", Image: labImageRef, Ports: []corev1.ContainerPort{{ContainerPort: int32(cfg.AppPort), Protocol: corev1.ProtocolTCP}}}}}}
	p, err := cs.CoreV1().Pods(cfg.Namespace).Create(ctx, pod, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("pod %s/%s: %w", cfg.Namespace, cfg.Pod, err)
	}
	return r.setRunning(ctx, p, a.pod.String(), a.node.String())
}

func runtimeVersion(cfg Config) string {
	switch cfg.Runtime {
	case RuntimeContainerd:
		return "containerd://" + containerdVersion(cfg.containerdBinary())
	case RuntimeSocat:
		return "docker://pftap-lab-dockershim"
	}
	return "cri-streaming://pftap-lab"
}

// containerdVersion is what `BIN --version` says, or "unknown".
func containerdVersion(bin string) string {
	out, err := exec.Command(bin, "--version").Output()
	if f := strings.Fields(string(out)); err == nil && len(f) >= 3 {
		return f[2]
	}
	return "unknown"
}

// setRunning reports a pod running, as its kubelet would.
func (r *realAPI) setRunning(ctx context.Context, p *corev1.Pod, podIP, hostIP string) error {
	now := metav1.Now()
	p.Status = corev1.PodStatus{Phase: corev1.PodRunning, PodIP: podIP, PodIPs: []corev1.PodIP{{IP: podIP}}, HostIP: hostIP, HostIPs: []corev1.HostIP{{IP: hostIP}}, StartTime: &now,
		Conditions: []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionTrue}, {Type: corev1.PodInitialized, Status: corev1.ConditionTrue},
			{Type: corev1.ContainersReady, Status: corev1.ConditionTrue}, {Type: corev1.PodReady, Status: corev1.ConditionTrue}}}
	for _, c := range p.Spec.Containers {
		p.Status.ContainerStatuses = append(p.Status.ContainerStatuses, corev1.ContainerStatus{Name: c.Name, Image: c.Image, Ready: true,
			State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: now}}})
	}
	if _, err := r.cs.CoreV1().Pods(p.Namespace).UpdateStatus(ctx, p, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("pod %s/%s status: %w", p.Namespace, p.Name, err)
	}
	return nil
}

// runNode watches the pods bound to the lab's node and runs those it can
// (pftap's agent, on the node's network, in-process), as a kubelet would:
// reports them running or failed, stops them when they are deleted and
// then removes them (grace period 0), as a kubelet confirms a deletion.
func (r *realAPI) runNode(ctx context.Context, l *Lab, a addressing, rt *runtime) {
	for ctx.Err() == nil {
		w, err := r.cs.CoreV1().Pods("").Watch(ctx, metav1.ListOptions{FieldSelector: "spec.nodeName=" + labNodeName})
		if err != nil {
			time.Sleep(200 * time.Millisecond)
			continue
		}
		for ev := range w.ResultChan() {
			p, ok := ev.Object.(*corev1.Pod)
			if !ok || (p.Namespace == l.cfg.Namespace && p.Name == l.cfg.Pod) {
				continue
			}
			key := p.Namespace + "/" + p.Name
			switch {
			case ev.Type == watch.Deleted || (ev.Type == watch.Modified && p.DeletionTimestamp != nil):
				r.stop(key)
				if ev.Type != watch.Deleted {
					zero := int64(0)
					r.cs.CoreV1().Pods(p.Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{GracePeriodSeconds: &zero})
				}
			case ev.Type == watch.Added && p.Status.Phase == "" || p.Status.Phase == corev1.PodPending:
				r.start(ctx, l, a, rt, p.DeepCopy())
			}
		}
		w.Stop()
	}
}

// start runs a pod bound to the node, once.
func (r *realAPI) start(ctx context.Context, l *Lab, a addressing, rt *runtime, p *corev1.Pod) {
	key := p.Namespace + "/" + p.Name
	r.mu.Lock()
	if _, ok := r.running[key]; ok {
		r.mu.Unlock()
		return
	}
	r.running[key] = nil
	r.podLog = append(r.podLog, "run "+key)
	r.mu.Unlock()
	fail := func(msg string) {
		p.Status = corev1.PodStatus{Phase: corev1.PodFailed, Message: msg, Reason: "PftapLab"}
		r.cs.CoreV1().Pods(p.Namespace).UpdateStatus(ctx, p, metav1.UpdateOptions{})
	}
	if !p.Spec.HostNetwork || len(p.Spec.Containers) != 1 || !isAgentCommand(p.Spec.Containers[0].Command) {
		fail("the lab's node runs only host-network pods of pftap agent (one container, command pftap agent ...)")
		return
	}
	stop, err := l.runAgentPod(p, rt, func(err error) {
		if cur, gerr := r.cs.CoreV1().Pods(p.Namespace).Get(ctx, p.Name, metav1.GetOptions{}); gerr == nil {
			cur.Status.Phase = corev1.PodSucceeded
			if err != nil {
				cur.Status.Phase, cur.Status.Message = corev1.PodFailed, err.Error()
			}
			r.cs.CoreV1().Pods(p.Namespace).UpdateStatus(ctx, cur, metav1.UpdateOptions{})
		}
	})
	if err != nil {
		fail(err.Error())
		return
	}
	r.mu.Lock()
	r.running[key] = stop
	r.mu.Unlock()
	if err := r.setRunning(ctx, p, a.node.String(), a.node.String()); err != nil {
		r.stop(key)
	}
}

func (r *realAPI) stop(key string) {
	r.mu.Lock()
	stop, ok := r.running[key]
	delete(r.running, key)
	if ok {
		r.podLog = append(r.podLog, "stop "+key)
	}
	r.mu.Unlock()
	if stop != nil {
		stop()
	}
}

func (r *realAPI) stopAll() {
	r.mu.Lock()
	keys := make([]string, 0, len(r.running))
	for k := range r.running {
		keys = append(keys, k)
	}
	r.mu.Unlock()
	for _, k := range keys {
		r.stop(k)
	}
}

// runs says whether the node runs the pod ns/name (pftap's agent).
func (r *realAPI) runs(ns, name string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.running[ns+"/"+name] != nil
}

// Metrics returns the real apiserver's /metrics lines that contain
// substr (such as "apiserver_websocket_streaming_requests_total").
func (l *Lab) Metrics(ctx context.Context, substr string) ([]string, error) {
	if l.realAPI == nil {
		return nil, errors.New("the lab's apiserver is pftap's own: it has no /metrics (run it with --apiserver)")
	}
	body, err := l.realAPI.cs.Discovery().RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, line := range strings.Split(string(body), "\n") {
		if !strings.HasPrefix(line, "#") && strings.Contains(line, substr) {
			out = append(out, line)
		}
	}
	return out, nil
}

// APIServerVersion is the real kube-apiserver's version ("" for pftap's own).
func (l *Lab) APIServerVersion() string {
	if l.realAPI == nil {
		return ""
	}
	return l.realAPI.version
}

// realAPIDefaults takes the lab's Kubernetes version from the binary and
// refuses what the real kube-apiserver cannot be made to do.
func (c *Config) realAPIDefaults() error {
	v, git, err := KubeAPIServerVersion(c.APIServerBinary)
	if err != nil {
		return err
	}
	switch {
	case !c.Kubernetes.IsZero() && c.Kubernetes != v:
		return fmt.Errorf("--kubernetes %s, but the kube-apiserver at %s is %s: with --apiserver the control plane's version is the binary's", c.Kubernetes, c.APIServerBinary, git)
	case c.Plain:
		return errors.New("--apiserver serves TLS only: a plain lab runs pftap's own apiserver")
	case c.RefuseWebSocket:
		return errors.New("the real kube-apiserver cannot be told to refuse WebSocket: use pftap's own apiserver for that")
	case c.NoWebSocket && v.TunnelsWebSocket():
		return fmt.Errorf("--no-websocket asks for an apiserver from before 1.31, and the kube-apiserver at %s is %s", c.APIServerBinary, git)
	}
	c.Kubernetes = v
	return nil
}
