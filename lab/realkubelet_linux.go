package lab

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/pftap/pftap/internal/nsenter"
	"github.com/pftap/pftap/internal/pki"
)

// realNodeUser is the node's identity towards the real kube-apiserver (the
// Node authorizer's), with a token of its own.
const realNodeUser = "system:node:" + labNodeName

// kubeletSysctls are the kernel settings the real kubelet sets on every
// start (its container manager's kernel tunables): the lab saves them
// before and puts them back after, also `lab clean` after a SIGKILL.
var kubeletSysctls = []string{"kernel/panic", "kernel/panic_on_oops", "vm/overcommit_memory"}

// kubeletFixedDirs are where the real kubelet writes whatever its root
// directory: its device-plugin socket and the container log links.
var kubeletFixedDirs = []string{"/var/lib/kubelet/device-plugins", "/var/lib/kubelet", "/var/log/containers"}

// KubeletVersion runs `BIN --version` and returns the release the kubelet
// says it is ("Kubernetes v1.37.2").
func KubeletVersion(bin string) (Version, string, error) {
	return binaryRelease(bin, "--kubelet-binary", "kubelet")
}

// realKubeletDefaults takes the node's version from the kubelet binary and
// refuses what the real kubelet cannot be part of.
func (c *Config) realKubeletDefaults() error {
	v, git, err := KubeletVersion(c.KubeletBinary)
	if err != nil {
		return err
	}
	switch {
	case c.APIServerBinary == "":
		return errors.New("the real kubelet registers with the real kube-apiserver: give --apiserver too")
	case c.Runtime != RuntimeContainerd:
		return fmt.Errorf("the real kubelet runs its pods through CRI: it needs --runtime %s, not %s", RuntimeContainerd, c.Runtime)
	case !c.Kubelet.IsZero() && c.Kubelet != v:
		return fmt.Errorf("--kubelet %s, but the kubelet at %s is %s: with --kubelet-binary the node's version is the binary's", c.Kubelet, c.KubeletBinary, git)
	case c.StaleDeclaredFeatures:
		return errors.New("the real kubelet reports its node's features itself: a stale node status needs pftap's own kubelet")
	case c.AppOnPodIP, c.RuntimeHTTPS, c.OtherPod != "":
		return errors.New("this fault needs pftap's own kubelet and pod")
	}
	c.Kubelet = v
	return nil
}

// realKubelet is the real kubelet run as the lab's node.
type realKubelet struct {
	version string // its gitVersion
	dir     string // LABDIR/kubelet: its root directory
	log     string
	logsDir string // its pods' logs
	exited  <-chan struct{}
}

// startRealKubelet writes the kubelet's configuration (its serving
// certificate from the lab's CA, webhook authentication and authorization
// against the apiserver, cgroupfs under the lab's own cgroup, the lab's
// containerd) and starts it in the node's namespace. The kernel settings it
// changes are saved first, and put back when the lab closes.
func (l *Lab) startRealKubelet(ctx context.Context, ca *pki.CA, a addressing, serving tls.Certificate, token string) error {
	cfg := l.cfg
	_, git, err := KubeletVersion(cfg.KubeletBinary)
	if err != nil {
		return err
	}
	k := &realKubelet{version: git, dir: filepath.Join(l.dir, "kubelet"), log: filepath.Join(l.dir, "kubelet.log"), logsDir: filepath.Join(l.dir, "pod-logs")}
	l.kubelet = k
	for _, d := range []string{k.dir, k.logsDir, filepath.Join(k.dir, "volume-plugins")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return err
		}
	}
	saved, err := readSysctls()
	if err != nil {
		return err
	}
	made := missingDirs(kubeletFixedDirs)
	l.sysctls, l.kubeletDirs = saved, made
	if err := l.writeState(); err != nil {
		return err
	}
	l.closers = append(l.closers, func() error {
		undoKubelet(l.dir, saved, made)
		return nil
	})
	if err := makeCgroupRoot("/" + cfg.Name); err != nil {
		return err
	}
	// The node reaches the apiserver's address through the control
	// plane's end of their link.
	if err := routeVia(l.NodeNetns, a.cp, a.cpToNode); err != nil {
		return err
	}
	file := func(name string, data []byte) (string, error) {
		p := filepath.Join(k.dir, name)
		return p, os.WriteFile(p, data, 0o600)
	}
	caFile, err := file("ca.crt", ca.PEM)
	if err != nil {
		return err
	}
	cp, kp, err := pki.EncodePEM(serving)
	if err != nil {
		return err
	}
	certFile, err := file("serving.crt", cp)
	if err != nil {
		return err
	}
	keyFile, err := file("serving.key", kp)
	if err != nil {
		return err
	}
	kubeconfig, err := file("kubeconfig", []byte(pki.Kubeconfig(pki.KubeconfigOptions{Name: "pftap-lab-node",
		Server: "https://" + netip.AddrPortFrom(a.cp, APIServerPort).String(), CAPEM: ca.PEM, Token: token})))
	if err != nil {
		return err
	}
	gates := ""
	if cfg.KubeletGateOff {
		gates = "featureGates:\n  ExtendWebSocketsToKubelet: false\n"
	}
	config := fmt.Sprintf(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: %[1]s
port: %[2]d
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
tlsCertFile: %[3]q
tlsPrivateKeyFile: %[4]q
authentication:
  anonymous:
    enabled: false
  webhook:
    enabled: true
  x509:
    clientCAFile: %[5]q
authorization:
  mode: Webhook
cgroupDriver: cgroupfs
cgroupRoot: %[6]q
failSwapOn: false
failCgroupV1: false
makeIPTablesUtilChains: false
containerRuntimeEndpoint: %[7]q
imageServiceEndpoint: %[7]q
volumePluginDir: %[8]q
podLogsDir: %[9]q
staticPodPath: ""
serializeImagePulls: false
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard:
  memory.available: 1Mi
  nodefs.available: 1%%
  nodefs.inodesFree: 1%%
  imagefs.available: 1%%
evictionPressureTransitionPeriod: 1s
nodeStatusUpdateFrequency: 2s
syncFrequency: 5s
%[10]s`, a.node, KubeletPort, certFile, keyFile, caFile, "/"+cfg.Name, "unix://"+l.containerd.sock,
		filepath.Join(k.dir, "volume-plugins"), k.logsDir, gates)
	configFile, err := file("config.yaml", []byte(config))
	if err != nil {
		return err
	}
	exited, err := l.startInNetns(l.NodeNetns, "kubelet", cfg.KubeletBinary, "--config="+configFile, "--kubeconfig="+kubeconfig,
		"--root-dir="+k.dir, "--cert-dir="+filepath.Join(k.dir, "pki"), "--hostname-override="+labNodeName, "--node-ip="+a.node.String(), "--v=1")
	if err != nil {
		return err
	}
	k.exited = exited
	return l.writeState()
}

// KubeletVersion is the real kubelet's version ("" for pftap's own).
func (l *Lab) KubeletVersion() string {
	if l.kubelet == nil {
		return ""
	}
	return l.kubelet.version
}

// waitNodeReady waits for the real kubelet's node to be registered and
// Ready.
func (r *realAPI) waitNodeReady(ctx context.Context, k *realKubelet) (*corev1.Node, error) {
	deadline := time.Now().Add(60 * time.Second)
	for {
		n, err := r.cs.CoreV1().Nodes().Get(ctx, labNodeName, metav1.GetOptions{})
		if err == nil {
			for _, c := range n.Status.Conditions {
				if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue {
					return n, nil
				}
			}
		}
		select {
		case <-k.exited:
			return nil, fmt.Errorf("the kubelet exited at start%s", lastLines(k.log, "", 3))
		default:
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return nil, fmt.Errorf("the kubelet's node was not Ready within 60s%s", lastLines(k.log, "", 3))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// bootstrapForKubelet is what a cluster's installer and controller-manager
// give a real kubelet: the apiserver's kubelet client allowed the kubelet
// API (its webhook authorizer asks), and the root CA's ConfigMap in the
// namespaces pods run in.
func (r *realAPI) bootstrapForKubelet(ctx context.Context, l *Lab) error {
	crb := &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "pftap-lab-apiserver-kubelet-client"},
		RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "system:kubelet-api-admin"},
		Subjects: []rbacv1.Subject{{APIGroup: "rbac.authorization.k8s.io", Kind: "User", Name: "system:kube-apiserver-kubelet-client"}}}
	if _, err := r.cs.RbacV1().ClusterRoleBindings().Create(ctx, crb, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("cluster role binding for the kubelet API: %w", err)
	}
	for _, ns := range []string{l.cfg.Namespace, "kube-system"} {
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "kube-root-ca.crt"}, Data: map[string]string{"ca.crt": string(l.CA)}}
		if _, err := r.cs.CoreV1().ConfigMaps(ns).Create(ctx, cm, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("ConfigMap %s/kube-root-ca.crt: %w", ns, err)
		}
	}
	return nil
}

// appPod is the lab's pod as the real kubelet runs it: the lab's image
// (imported into containerd, never pulled), the built-in app or nginx.
func (l *Lab) appPod() (*corev1.Pod, error) {
	cfg := l.cfg
	no := false
	c := corev1.Container{Name: "app", Image: labImageRef, ImagePullPolicy: corev1.PullNever,
		Ports: []corev1.ContainerPort{{ContainerPort: int32(cfg.AppPort), Protocol: corev1.ProtocolTCP}}}
	var vols []corev1.Volume
	switch cfg.App {
	case AppBuiltin:
		c.Command = []string{labBinary}
		c.Env = []corev1.EnvVar{{Name: roleEnv, Value: roleApp}, {Name: appPortEnv, Value: strconv.Itoa(cfg.AppPort)}}
	case AppNginx:
		conf, err := l.nginxFiles()
		if err != nil {
			return nil, err
		}
		c.Command = []string{nginxPath, "-c", conf, "-p", l.dir}
		c.Env = []corev1.EnvVar{{Name: roleEnv, Value: ""}}
		dirType := corev1.HostPathDirectory
		vols = []corev1.Volume{{Name: "lab", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: l.dir, Type: &dirType}}}}
		c.VolumeMounts = []corev1.VolumeMount{{Name: "lab", MountPath: l.dir}}
	}
	zero := int64(0)
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: cfg.Pod, Namespace: cfg.Namespace, Labels: map[string]string{"app": cfg.Pod}},
		Spec: corev1.PodSpec{NodeName: labNodeName, AutomountServiceAccountToken: &no, TerminationGracePeriodSeconds: &zero,
			Containers: []corev1.Container{c}, Volumes: vols}}, nil
}

// runAppPod creates the lab's pod through the API, bound to the node, and
// waits for the real kubelet to run it; then takes its sandbox from
// containerd (its network namespace, its IP) and containerd's streaming
// server's address.
func (r *realAPI) runAppPod(ctx context.Context, l *Lab) error {
	pod, err := l.appPod()
	if err != nil {
		return err
	}
	created, err := r.cs.CoreV1().Pods(pod.Namespace).Create(ctx, pod, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("pod %s/%s: %w", pod.Namespace, pod.Name, err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		p, err := r.cs.CoreV1().Pods(pod.Namespace).Get(ctx, pod.Name, metav1.GetOptions{})
		if err == nil && p.Status.Phase == corev1.PodRunning && p.Status.PodIP != "" {
			break
		}
		if err == nil && p.Status.Phase == corev1.PodFailed {
			return fmt.Errorf("the kubelet failed the pod: %s %s", p.Status.Reason, p.Status.Message)
		}
		select {
		case <-l.kubelet.exited:
			return fmt.Errorf("the kubelet exited%s", lastLines(l.kubelet.log, "", 3))
		default:
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			why := ""
			if err == nil {
				why = " (" + string(p.Status.Phase) + ")"
				for _, cs := range p.Status.ContainerStatuses {
					if w := cs.State.Waiting; w != nil {
						why += ": " + w.Reason + " " + w.Message
					}
				}
			}
			return fmt.Errorf("the kubelet did not run pod %s/%s within 60s%s%s", pod.Namespace, pod.Name, why, lastLines(l.kubelet.log, "", 2))
		}
		time.Sleep(100 * time.Millisecond)
	}
	return l.containerd.adopt(ctx, l, string(created.UID))
}

// adopt takes the sandbox and container the real kubelet made for the pod
// of uid as the lab's pod: its network namespace and IP, its log, and the
// streaming server's address (a PortForward call says it).
func (c *containerd) adopt(ctx context.Context, l *Lab, uid string) error {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	sbs, err := c.rt.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{Filter: &runtimeapi.PodSandboxFilter{
		State: &runtimeapi.PodSandboxStateValue{State: runtimeapi.PodSandboxState_SANDBOX_READY}, LabelSelector: map[string]string{"io.kubernetes.pod.uid": uid}}})
	if err != nil {
		return fmt.Errorf("containerd ListPodSandbox: %v", err)
	}
	if len(sbs.Items) != 1 {
		return fmt.Errorf("containerd has %d ready sandboxes of the pod (uid %s), want 1", len(sbs.Items), uid)
	}
	c.sandbox = sbs.Items[0].Id
	st, err := c.rt.PodSandboxStatus(ctx, &runtimeapi.PodSandboxStatusRequest{PodSandboxId: c.sandbox, Verbose: true})
	if err != nil {
		return fmt.Errorf("containerd PodSandboxStatus: %v", err)
	}
	if c.podIP, err = netip.ParseAddr(st.GetStatus().GetNetwork().GetIp()); err != nil {
		return fmt.Errorf("the pod sandbox has no IP from CNI: %v", err)
	}
	if c.netns, err = sandboxNetns(st.GetInfo()["info"]); err != nil {
		return err
	}
	cs, err := c.rt.ListContainers(ctx, &runtimeapi.ListContainersRequest{Filter: &runtimeapi.ContainerFilter{PodSandboxId: c.sandbox}})
	if err != nil || len(cs.Containers) == 0 {
		return fmt.Errorf("containerd ListContainers: the pod's app container not found (%v)", err)
	}
	c.container = cs.Containers[0].Id
	cst, err := c.rt.ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: c.container})
	if err == nil && cst.GetStatus().GetLogPath() != "" {
		c.appLogPath = cst.GetStatus().GetLogPath()
	}
	return c.podUp(ctx, l)
}

// readSysctls reads the kernel settings the kubelet changes.
func readSysctls() (map[string]string, error) {
	out := map[string]string{}
	for _, k := range kubeletSysctls {
		b, err := os.ReadFile("/proc/sys/" + k)
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", strings.ReplaceAll(k, "/", "."), err)
		}
		out[k] = strings.TrimSpace(string(b))
	}
	return out, nil
}

// undoKubelet puts back what a real kubelet changed outside the lab's
// directory: the kernel settings saved before it started, its
// device-plugin socket and the container log links into dir, and the
// fixed directories it made (those that did not exist before). It returns
// a line per thing undone.
func undoKubelet(dir string, sysctls map[string]string, made []string) []string {
	var done []string
	for _, k := range kubeletSysctls {
		v, ok := sysctls[k]
		if !ok {
			continue
		}
		b, err := os.ReadFile("/proc/sys/" + k)
		if err == nil && strings.TrimSpace(string(b)) != v && os.WriteFile("/proc/sys/"+k, []byte(v), 0o644) == nil {
			done = append(done, fmt.Sprintf("restored %s = %s", strings.ReplaceAll(k, "/", "."), v))
		}
	}
	if dir != "" {
		links, _ := filepath.Glob("/var/log/containers/*.log")
		for _, ln := range links {
			if t, err := os.Readlink(ln); err == nil && strings.HasPrefix(t, dir+"/") && os.Remove(ln) == nil {
				done = append(done, "removed "+ln)
			}
		}
	}
	if os.Remove("/var/lib/kubelet/device-plugins/kubelet.sock") == nil {
		done = append(done, "removed /var/lib/kubelet/device-plugins/kubelet.sock")
	}
	for _, d := range made {
		// Only if empty: another kubelet's files are never touched.
		if os.Remove(d) == nil {
			done = append(done, "removed "+d)
		}
	}
	return done
}

// missingDirs are the directories of dirs that do not exist (the deepest
// first, as they are to be removed).
func missingDirs(dirs []string) []string {
	var out []string
	for _, d := range dirs {
		if _, err := os.Stat(d); errors.Is(err, os.ErrNotExist) {
			out = append(out, d)
		}
	}
	return out
}

// makeCgroupRoot makes the cgroup path in every hierarchy (cgroup v1 has
// one per controller), as the kubelet wants its cgroupRoot to exist.
func makeCgroupRoot(path string) error {
	roots, _ := filepath.Glob("/sys/fs/cgroup/*")
	if fi, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err == nil && !fi.IsDir() {
		roots = []string{"/sys/fs/cgroup"} // cgroup v2: one hierarchy
	}
	for _, r := range roots {
		if fi, err := os.Lstat(r); err != nil || !fi.IsDir() {
			continue // a link to a combined hierarchy (cpu,cpuacct)
		}
		if _, err := os.Stat(filepath.Join(r, "cgroup.procs")); err != nil {
			continue
		}
		if err := os.MkdirAll(filepath.Join(r, path), 0o755); err != nil {
			return fmt.Errorf("cgroup %s: %w", filepath.Join(r, path), err)
		}
	}
	return nil
}

// routeVia adds a host route in namespace ns to dst through gw.
func routeVia(ns string, dst, gw netip.Addr) error {
	h, err := netns.GetFromPath(nsenter.Path(ns))
	if err != nil {
		return err
	}
	defer h.Close()
	nh, err := netlink.NewHandleAt(h)
	if err != nil {
		return err
	}
	defer nh.Close()
	err = nh.RouteAdd(&netlink.Route{Dst: &net.IPNet{IP: dst.AsSlice(), Mask: net.CIDRMask(32, 32)}, Gw: gw.AsSlice()})
	if err != nil && !errors.Is(err, syscall.EEXIST) {
		return fmt.Errorf("route to %s via %s in %s: %w", dst, gw, ns, err)
	}
	return nil
}
