package trace

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// PortPair is one forwarded port: Local on this machine (0: any free
// one) to Remote in the pod.
type PortPair struct {
	Local, Remote int
	// Spec is how the user wrote it.
	Spec string
}

// Target is what to forward to, resolved as kubectl port-forward resolves
// it: a running pod and its numeric ports.
type Target struct {
	Namespace string
	Pod       *corev1.Pod
	Ports     []PortPair
	// Via says how the pod was chosen ("service nginx selects 1 pod").
	Via string
}

// Resolve finds the pod behind target (pod/NAME, NAME, svc/NAME,
// deploy/NAME, rs/NAME, sts/NAME, ds/NAME) in namespace ns and turns
// ports ("8080:80", ":80", "80", "8080:http") into numbers: a service's
// port becomes its target port, a name the pod's container port of that
// name.
func Resolve(ctx context.Context, cs kubernetes.Interface, ns, target string, ports []string) (*Target, error) {
	if len(ports) == 0 {
		return nil, fmt.Errorf("at least one port is needed, as in kubectl: %s 8080:80", target)
	}
	kind, name, ok := strings.Cut(target, "/")
	if !ok {
		kind, name = "pod", target
	}
	if name == "" {
		return nil, fmt.Errorf("%q: no name after the type", target)
	}
	t := &Target{Namespace: ns}
	var svc *corev1.Service
	var selector *metav1.LabelSelector
	switch strings.ToLower(kind) {
	case "pod", "pods", "po":
		p, err := cs.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return nil, explainGet(err, "pod", ns, name)
		}
		t.Pod = p
	case "service", "services", "svc":
		s, err := cs.CoreV1().Services(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return nil, explainGet(err, "service", ns, name)
		}
		if len(s.Spec.Selector) == 0 {
			return nil, fmt.Errorf("service %s/%s has no selector: port-forward needs a pod behind it", ns, name)
		}
		svc = s
		selector = &metav1.LabelSelector{MatchLabels: s.Spec.Selector}
	case "deployment", "deployments", "deploy":
		d, err := cs.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return nil, explainGet(err, "deployment", ns, name)
		}
		selector = d.Spec.Selector
	case "replicaset", "replicasets", "rs":
		r, err := cs.AppsV1().ReplicaSets(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return nil, explainGet(err, "replicaset", ns, name)
		}
		selector = r.Spec.Selector
	case "statefulset", "statefulsets", "sts":
		s, err := cs.AppsV1().StatefulSets(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return nil, explainGet(err, "statefulset", ns, name)
		}
		selector = s.Spec.Selector
	case "daemonset", "daemonsets", "ds":
		d, err := cs.AppsV1().DaemonSets(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return nil, explainGet(err, "daemonset", ns, name)
		}
		selector = d.Spec.Selector
	default:
		return nil, fmt.Errorf("cannot port-forward to a %q: use pod/, svc/, deploy/, rs/, sts/ or ds/", kind)
	}
	if t.Pod == nil {
		sel, err := metav1.LabelSelectorAsSelector(selector)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", target, err)
		}
		p, n, err := runningPod(ctx, cs, ns, sel)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", target, err)
		}
		t.Pod = p
		t.Via = fmt.Sprintf("%s selects %d pod(s); using %s", target, n, p.Name)
	}
	if t.Pod.Status.Phase != corev1.PodRunning {
		return nil, fmt.Errorf("pod %s/%s is %s, not Running: port-forward needs a running pod", ns, t.Pod.Name, t.Pod.Status.Phase)
	}
	for _, spec := range ports {
		pp, err := parsePort(spec, svc, t.Pod)
		if err != nil {
			return nil, err
		}
		t.Ports = append(t.Ports, pp)
	}
	return t, nil
}

// runningPod picks a running pod among those sel matches, newest first
// among the ready ones, as kubectl does for workloads.
func runningPod(ctx context.Context, cs kubernetes.Interface, ns string, sel labels.Selector) (*corev1.Pod, int, error) {
	list, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: sel.String()})
	if err != nil {
		return nil, 0, err
	}
	var running []corev1.Pod
	for _, p := range list.Items {
		if p.Status.Phase == corev1.PodRunning && p.DeletionTimestamp == nil {
			running = append(running, p)
		}
	}
	if len(running) == 0 {
		return nil, 0, fmt.Errorf("no running pod matches %s (%d pods match)", sel, len(list.Items))
	}
	sort.SliceStable(running, func(i, j int) bool {
		ri, rj := ready(&running[i]), ready(&running[j])
		if ri != rj {
			return ri
		}
		return running[i].CreationTimestamp.After(running[j].CreationTimestamp.Time)
	})
	return &running[0], len(running), nil
}

func ready(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// parsePort reads "L:R", ":R" or "R"; R is a number or a name (of the
// service's port, or of the pod's container port).
func parsePort(spec string, svc *corev1.Service, pod *corev1.Pod) (PortPair, error) {
	local, remote, colon := strings.Cut(spec, ":")
	if !colon {
		remote, local = local, ""
	}
	pp := PortPair{Spec: spec}
	switch {
	case local == "" && colon:
		pp.Local = 0
	case local == "":
		pp.Local = -1 // same as remote, set below
	default:
		n, err := strconv.Atoi(local)
		if err != nil || n < 0 || n > 65535 {
			return pp, fmt.Errorf("port %q: the local port %q is not a port number", spec, local)
		}
		pp.Local = n
	}
	if remote == "" {
		return pp, fmt.Errorf("port %q: no remote port", spec)
	}
	r, err := remotePort(remote, svc, pod)
	if err != nil {
		return pp, fmt.Errorf("port %q: %w", spec, err)
	}
	pp.Remote = r
	if pp.Local == -1 {
		// kubectl: "80" listens locally on 80 too, the service's port
		// number when the target is a service.
		pp.Local = r
		if n, err := strconv.Atoi(remote); err == nil {
			pp.Local = n
		}
	}
	return pp, nil
}

func remotePort(remote string, svc *corev1.Service, pod *corev1.Pod) (int, error) {
	if svc != nil {
		for _, sp := range svc.Spec.Ports {
			if sp.Name == remote || strconv.Itoa(int(sp.Port)) == remote {
				return targetPort(sp.TargetPort, int(sp.Port), pod)
			}
		}
		return 0, fmt.Errorf("service %s has no port %s", svc.Name, remote)
	}
	if n, err := strconv.Atoi(remote); err == nil {
		if n < 1 || n > 65535 {
			return 0, fmt.Errorf("%d is not a port", n)
		}
		return n, nil
	}
	return namedPort(remote, pod)
}

func targetPort(tp intstr.IntOrString, port int, pod *corev1.Pod) (int, error) {
	switch {
	case tp.Type == intstr.String && tp.StrVal != "":
		return namedPort(tp.StrVal, pod)
	case tp.IntVal != 0:
		return int(tp.IntVal), nil
	}
	return port, nil
}

func namedPort(name string, pod *corev1.Pod) (int, error) {
	for _, c := range pod.Spec.Containers {
		for _, p := range c.Ports {
			if p.Name == name {
				return int(p.ContainerPort), nil
			}
		}
	}
	return 0, fmt.Errorf("pod %s has no container port named %q", pod.Name, name)
}

// explainGet turns a failed GET into one clear line.
func explainGet(err error, kind, ns, name string) error {
	switch {
	case apierrors.IsNotFound(err):
		return fmt.Errorf("%s %s not found in namespace %s", kind, name, ns)
	case apierrors.IsForbidden(err):
		return fmt.Errorf("not allowed to get %s %s/%s (RBAC: your user needs get on %ss in %s): %v", kind, ns, name, kind, ns, err)
	case apierrors.IsUnauthorized(err):
		return fmt.Errorf("the apiserver did not accept your credentials (401): check the kubeconfig's user, token or certificate: %v", err)
	}
	return fmt.Errorf("get %s %s/%s: %w", kind, ns, name, err)
}

// LoadKubeconfig reads the kubeconfig as kubectl does (path: --kubeconfig,
// or $KUBECONFIG, or ~/.kube/config; overrides: the context, cluster, user
// and namespace flags) and returns its REST config, its namespace and a
// clientset on it.
func LoadKubeconfig(path string, overrides *clientcmd.ConfigOverrides) (*rest.Config, string, kubernetes.Interface, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	if path != "" {
		rules.ExplicitPath = path
	}
	cc := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, overrides)
	cfg, err := cc.ClientConfig()
	if err != nil {
		return nil, "", nil, fmt.Errorf("kubeconfig: %w", err)
	}
	ns, _, err := cc.Namespace()
	if err != nil {
		return nil, "", nil, fmt.Errorf("kubeconfig: %w", err)
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, "", nil, err
	}
	return cfg, ns, cs, nil
}
