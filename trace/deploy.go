package trace

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/pftap/pftap/agent"
	"github.com/pftap/pftap/internal/pfclient"
	"github.com/pftap/pftap/internal/pki"
)

// DeployOptions say how to run the agent as a pod.
type DeployOptions struct {
	// Image holds the pftap binary at /pftap.
	Image string
	// Namespace for the agent pod ("": the target's).
	Namespace string
	// Wait bounds the wait for the pod to run (2 minutes).
	Wait time.Duration
	// Log receives progress lines.
	Log io.Writer
}

// Deployed is an agent pod trace started, reached through the API.
type Deployed struct {
	// Addr, Token and Fingerprint are trace's agent options.
	Addr, Token, Fingerprint string
	Pod                      *corev1.Pod
	fwd                      *pfclient.Forwarder
	cs                       kubernetes.Interface
}

// AgentPod is the pod spec trace creates on the target's node: host
// network and PID (the node's legs, the pod's namespace found from its
// IP), privileged (packet sockets, entering namespaces), listening on the
// node's 127.0.0.1 only, with its token and certificate from trace. It
// ends by itself once no trace session has run for AgentIdle (a trace
// killed before it could delete the pod), and a deadline bounds it in any
// case. Its token is good for one session (--once): the pod's spec shows
// it to whoever may read pods there, and once trace has used it, it opens
// nothing.
func AgentPod(ns, node, image, token string, certPEM, keyPEM []byte) *corev1.Pod {
	b := make([]byte, 3)
	rand.Read(b)
	privileged := true
	deadline := int64(6 * 3600)
	grace := int64(1)
	return &corev1.Pod{
		TypeMeta: metav1.TypeMeta{Kind: "Pod", APIVersion: "v1"},
		ObjectMeta: metav1.ObjectMeta{Name: "pftap-agent-" + hex.EncodeToString(b), Namespace: ns,
			Labels: map[string]string{"app.kubernetes.io/name": "pftap-agent", "app.kubernetes.io/managed-by": "pftap-trace"}},
		Spec: corev1.PodSpec{
			NodeName:                      node,
			HostNetwork:                   true,
			HostPID:                       true,
			RestartPolicy:                 corev1.RestartPolicyNever,
			ActiveDeadlineSeconds:         &deadline,
			TerminationGracePeriodSeconds: &grace,
			Tolerations:                   []corev1.Toleration{{Operator: corev1.TolerationOpExists}},
			Containers: []corev1.Container{{
				Name:  "agent",
				Image: image,
				// An image loaded on the node (kind load, ctr import) is
				// used as it is, whatever its tag.
				ImagePullPolicy: corev1.PullIfNotPresent,
				Command:         []string{"/pftap", "agent", "--listen", "127.0.0.1:" + strconv.Itoa(agent.Port), "--exit-when-idle", AgentIdle.String(), "--once"},
				Env: []corev1.EnvVar{{Name: agent.EnvToken, Value: token}, {Name: agent.EnvCert, Value: string(certPEM)},
					{Name: agent.EnvKey, Value: string(keyPEM)}},
				SecurityContext: &corev1.SecurityContext{Privileged: &privileged},
			}},
		},
	}
}

// AgentIdle is how long a deployed agent runs with no trace session before
// it ends: with agent.Silence, a trace killed by SIGKILL leaves its agent
// running for less than a minute.
const AgentIdle = 20 * time.Second

// DeployAgent creates the agent pod on the target pod's node, waits for it
// to run, and port-forwards to it through the API (so cluster RBAC decides
// who may use it). Remove deletes it.
func DeployAgent(ctx context.Context, cs kubernetes.Interface, cfg *rest.Config, t *Target, o DeployOptions) (*Deployed, error) {
	if t.Pod.Spec.NodeName == "" {
		return nil, fmt.Errorf("pod %s/%s has no node yet", t.Namespace, t.Pod.Name)
	}
	ns := o.Namespace
	if ns == "" {
		ns = t.Namespace
	}
	if o.Wait == 0 {
		o.Wait = 2 * time.Minute
	}
	cert, err := agent.NewCertificate()
	if err != nil {
		return nil, err
	}
	certPEM, keyPEM, err := pki.EncodePEM(cert)
	if err != nil {
		return nil, err
	}
	tok := make([]byte, 18)
	rand.Read(tok)
	d := &Deployed{Token: hex.EncodeToString(tok), Fingerprint: pki.Fingerprint(cert), cs: cs}
	spec := AgentPod(ns, t.Pod.Spec.NodeName, o.Image, d.Token, certPEM, keyPEM)
	logf := func(format string, args ...any) {
		if o.Log != nil {
			fmt.Fprintf(o.Log, format+"\n", args...)
		}
	}
	pod, err := cs.CoreV1().Pods(ns).Create(ctx, spec, metav1.CreateOptions{})
	if err != nil {
		return nil, fmt.Errorf("creating the agent pod in %s: %w", ns, explainCreate(err))
	}
	d.Pod = pod
	logf("pftap trace: created agent pod %s/%s on node %s (image %s); waiting for it to run", ns, pod.Name, pod.Spec.NodeName, o.Image)
	running, err := waitRunning(ctx, cs, pod, o.Wait)
	if err != nil {
		d.Remove()
		return nil, err
	}
	d.Pod = running
	// A kubelet says Running once the container started, which may be
	// before the agent listens; and a forward whose dial in the pod was
	// refused may end. Forward, then wait for the agent's TLS (a
	// handshake only, pinned: nothing is sent before the certificate is
	// the agent's); again with a new forward until it answers.
	deadline := time.Now().Add(20 * time.Second)
	for {
		fwd, err := pfclient.Start(ctx, pfclient.Options{Config: cfg, Namespace: ns, Pod: pod.Name, Ports: []string{"0:" + strconv.Itoa(agent.Port)}})
		if err != nil {
			d.Remove()
			return nil, fmt.Errorf("port-forward to the agent pod: %w", err)
		}
		addr := "127.0.0.1:" + strconv.Itoa(fwd.Local)
		err = agentAnswers(ctx, addr, d.Fingerprint)
		if err == nil {
			d.fwd, d.Addr = fwd, addr
			return d, nil
		}
		fwd.Stop()
		if errors.Is(err, ErrAgentNotPinned) || ctx.Err() != nil || time.Now().After(deadline) {
			d.Remove()
			return nil, fmt.Errorf("the agent pod %s/%s runs, but its agent did not answer through the port-forward: %w", ns, pod.Name, err)
		}
		time.Sleep(300 * time.Millisecond)
	}
}

// agentAnswers says whether the agent at addr completes a TLS handshake
// with the certificate of fingerprint (nil: it does).
func agentAnswers(ctx context.Context, addr, fingerprint string) error {
	cfg := &tls.Config{MinVersion: tls.VersionTLS13, InsecureSkipVerify: true,
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			if len(raw) == 0 {
				return errors.New("no certificate")
			}
			sum := sha256.Sum256(raw[0])
			if !strings.EqualFold(hex.EncodeToString(sum[:]), fingerprint) {
				return fmt.Errorf("%w: it presents another certificate than the one trace made for it", ErrAgentNotPinned)
			}
			return nil
		}}
	dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	c, err := (&tls.Dialer{Config: cfg}).DialContext(dctx, "tcp", addr)
	if err != nil {
		return err
	}
	return c.Close()
}

func waitRunning(ctx context.Context, cs kubernetes.Interface, pod *corev1.Pod, wait time.Duration) (*corev1.Pod, error) {
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	w, err := cs.CoreV1().Pods(pod.Namespace).Watch(ctx, metav1.ListOptions{FieldSelector: fields.OneTermEqualSelector("metadata.name", pod.Name).String()})
	if err != nil {
		return nil, fmt.Errorf("watching the agent pod: %w", err)
	}
	defer w.Stop()
	for {
		select {
		case <-ctx.Done():
			if errors.Is(context.Cause(ctx), context.Canceled) {
				return nil, fmt.Errorf("stopped while waiting for the agent pod %s/%s to run", pod.Namespace, pod.Name)
			}
			return nil, fmt.Errorf("the agent pod %s/%s did not run within %s (image pull? admission?)", pod.Namespace, pod.Name, wait)
		case ev, ok := <-w.ResultChan():
			if !ok {
				return nil, fmt.Errorf("the watch of the agent pod %s/%s ended", pod.Namespace, pod.Name)
			}
			p, isPod := ev.Object.(*corev1.Pod)
			if !isPod {
				continue
			}
			switch {
			case ev.Type == watch.Deleted:
				return nil, fmt.Errorf("the agent pod %s/%s was deleted before it ran", p.Namespace, p.Name)
			case p.Status.Phase == corev1.PodRunning:
				return p, nil
			case p.Status.Phase == corev1.PodFailed || p.Status.Phase == corev1.PodSucceeded:
				return nil, fmt.Errorf("the agent pod %s/%s ended (%s): %s", p.Namespace, p.Name, p.Status.Phase, p.Status.Message)
			}
		}
	}
}

// Remove stops the port-forward to the agent and deletes its pod.
func (d *Deployed) Remove() error {
	if d.fwd != nil {
		d.fwd.Stop()
	}
	if d.Pod == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	zero := int64(0)
	err := d.cs.CoreV1().Pods(d.Pod.Namespace).Delete(ctx, d.Pod.Name, metav1.DeleteOptions{GracePeriodSeconds: &zero})
	if err != nil {
		return fmt.Errorf("deleting the agent pod %s/%s: %w (delete it by hand)", d.Pod.Namespace, d.Pod.Name, err)
	}
	return nil
}

func explainCreate(err error) error {
	if apierrors.IsForbidden(err) && strings.Contains(err.Error(), "violates PodSecurity") {
		return fmt.Errorf("%v (admission refused the agent, a privileged host-network pod: its namespace's Pod Security level must be privileged; --agent-namespace picks another namespace, such as kube-system)", err)
	}
	if apierrors.IsForbidden(err) {
		return fmt.Errorf("%v (the agent is a privileged host-network pod: you need create and delete on pods there, and its Pod Security level must be privileged; --agent-namespace picks another namespace)", err)
	}
	return err
}
