package lab

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes/scheme"

	"github.com/pftap/pftap/internal/fakeapi"
)

// hostPods are the pods the lab runs besides its app's: pods created
// through its API, as `pftap trace --agent deploy` creates pftap's agent.
// The lab runs only host-network pods whose command is `pftap agent`: it
// starts the agent in-process in the node's namespace, as the node would
// run the container.
type hostPods struct {
	mu       sync.Mutex
	pods     map[string]*hostPod // namespace/name
	watchers map[*podWatcher]bool
	// run starts a pod and returns how to stop it; ended is called when
	// the pod's process ends by itself.
	run func(p *corev1.Pod, ended func(error)) (stop func(), err error)
	// nodeName and nodeIP fill in what the node would.
	nodeName, nodeIP string
	// log records the API calls on host pods, for tests: "create NS/NAME".
	log []string
}

type hostPod struct {
	pod  *corev1.Pod
	stop func()
}

type podWatcher struct {
	ns     string
	fields fields.Selector
	labels labels.Selector
	ch     chan watch.Event
}

func newHostPods(nodeName, nodeIP string, run func(p *corev1.Pod, ended func(error)) (func(), error)) *hostPods {
	return &hostPods{pods: map[string]*hostPod{}, watchers: map[*podWatcher]bool{}, run: run, nodeName: nodeName, nodeIP: nodeIP}
}

// get returns a copy of a host pod.
func (h *hostPods) get(ns, name string) *corev1.Pod {
	h.mu.Lock()
	defer h.mu.Unlock()
	if hp := h.pods[ns+"/"+name]; hp != nil {
		return hp.pod.DeepCopy()
	}
	return nil
}

// list returns the host pods of ns that sel matches.
func (h *hostPods) list(ns string, sel labels.Selector) []corev1.Pod {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []corev1.Pod
	for _, hp := range h.pods {
		if hp.pod.Namespace == ns && sel.Matches(labels.Set(hp.pod.Labels)) {
			out = append(out, *hp.pod.DeepCopy())
		}
	}
	return out
}

func (h *hostPods) record(s string) {
	h.mu.Lock()
	h.log = append(h.log, s)
	h.mu.Unlock()
}

// Log is what was done to host pods through the API.
func (h *hostPods) Log() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.log...)
}

// notify sends an event to the watchers it concerns. Called with mu held.
func (h *hostPods) notify(t watch.EventType, p *corev1.Pod) {
	for w := range h.watchers {
		if w.ns != p.Namespace || !w.labels.Matches(labels.Set(p.Labels)) ||
			!w.fields.Matches(fields.Set{"metadata.name": p.Name, "metadata.namespace": p.Namespace}) {
			continue
		}
		select {
		case w.ch <- watch.Event{Type: t, Object: p.DeepCopy()}:
		default: // a watcher that does not read loses events, as with a real apiserver's slow consumers
		}
	}
}

// create validates and starts a pod, as the scheduler and the node would.
func (h *hostPods) create(w http.ResponseWriter, r *http.Request, ns string) {
	// client-go sends protobuf by default, kubectl JSON: the universal
	// deserializer reads both.
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		fakeapi.Status(w, http.StatusBadRequest, "BadRequest", "pod: "+err.Error())
		return
	}
	var p corev1.Pod
	if _, _, err := scheme.Codecs.UniversalDeserializer().Decode(body, nil, &p); err != nil {
		fakeapi.Status(w, http.StatusBadRequest, "BadRequest", "pod: "+err.Error())
		return
	}
	if p.Name == "" && p.GenerateName != "" {
		b := make([]byte, 3)
		rand.Read(b)
		p.Name = p.GenerateName + hex.EncodeToString(b)
	}
	if p.Name == "" {
		fakeapi.Status(w, http.StatusUnprocessableEntity, "Invalid", "pod: metadata.name: Required value")
		return
	}
	if p.Namespace == "" {
		p.Namespace = ns
	}
	if !p.Spec.HostNetwork || len(p.Spec.Containers) != 1 || !isAgentCommand(p.Spec.Containers[0].Command) {
		fakeapi.Status(w, http.StatusForbidden, "Forbidden", "the lab runs only host-network pods of pftap agent (one container, command pftap agent ...)")
		return
	}
	if p.Spec.NodeName != "" && p.Spec.NodeName != h.nodeName {
		fakeapi.Status(w, http.StatusUnprocessableEntity, "Invalid", fmt.Sprintf("pod: spec.nodeName: the lab has one node, %s", h.nodeName))
		return
	}
	h.mu.Lock()
	if _, dup := h.pods[p.Namespace+"/"+p.Name]; dup {
		h.mu.Unlock()
		fakeapi.Status(w, http.StatusConflict, "AlreadyExists", fmt.Sprintf("pods %q already exists", p.Name))
		return
	}
	now := metav1.Now()
	p.UID = types.UID("agent-" + p.Name)
	p.ResourceVersion = "1"
	p.CreationTimestamp = now
	p.Spec.NodeName = h.nodeName
	p.Status = corev1.PodStatus{Phase: corev1.PodPending}
	hp := &hostPod{pod: &p}
	h.pods[p.Namespace+"/"+p.Name] = hp
	h.notify(watch.Added, &p)
	created := p.DeepCopy()
	h.mu.Unlock()
	h.record("create " + p.Namespace + "/" + p.Name)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusCreated)
	json.NewEncoder(w).Encode(created)

	// The node starts it.
	go func() {
		stop, err := h.run(created, func(err error) { h.ended(p.Namespace, p.Name, hp, err) })
		h.mu.Lock()
		defer h.mu.Unlock()
		cur := h.pods[p.Namespace+"/"+p.Name]
		if cur != hp {
			if stop != nil {
				stop() // deleted meanwhile
			}
			return
		}
		hp.stop = stop
		pod := hp.pod
		pod.ResourceVersion = "2"
		start := metav1.Now()
		if err != nil {
			pod.Status.Phase = corev1.PodFailed
			pod.Status.Message = err.Error()
		} else {
			pod.Status = corev1.PodStatus{Phase: corev1.PodRunning, HostIP: h.nodeIP, PodIP: h.nodeIP, StartTime: &start,
				Conditions:        []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}},
				ContainerStatuses: []corev1.ContainerStatus{{Name: pod.Spec.Containers[0].Name, Ready: true, State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: start}}}}}
		}
		h.notify(watch.Modified, pod)
	}()
}

// ended records that a pod's process ended by itself, as the kubelet
// would: phase Succeeded (exit 0) or Failed, the container terminated.
func (h *hostPods) ended(ns, name string, hp *hostPod, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.pods[ns+"/"+name] != hp {
		return // deleted meanwhile
	}
	pod := hp.pod
	pod.ResourceVersion = "3"
	now := metav1.Now()
	term := &corev1.ContainerStateTerminated{FinishedAt: now, Reason: "Completed"}
	pod.Status.Phase = corev1.PodSucceeded
	if err != nil {
		pod.Status.Phase, term.ExitCode, term.Reason, term.Message = corev1.PodFailed, 1, "Error", err.Error()
	}
	pod.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionFalse}}
	for i := range pod.Status.ContainerStatuses {
		pod.Status.ContainerStatuses[i].Ready = false
		pod.Status.ContainerStatuses[i].State = corev1.ContainerState{Terminated: term}
	}
	h.log = append(h.log, "ended "+ns+"/"+name+" "+string(pod.Status.Phase))
	h.notify(watch.Modified, pod)
}

func isAgentCommand(cmd []string) bool {
	return len(cmd) >= 2 && strings.HasSuffix(cmd[0], "pftap") && cmd[1] == "agent"
}

// remove deletes a pod and stops it.
func (h *hostPods) remove(w http.ResponseWriter, ns, name string) {
	h.mu.Lock()
	hp := h.pods[ns+"/"+name]
	if hp == nil {
		h.mu.Unlock()
		fakeapi.Status(w, http.StatusNotFound, "NotFound", fmt.Sprintf("pods %q not found", name))
		return
	}
	delete(h.pods, ns+"/"+name)
	h.notify(watch.Deleted, hp.pod)
	stop := hp.stop
	pod := hp.pod.DeepCopy()
	h.mu.Unlock()
	if stop != nil {
		stop()
	}
	h.record("delete " + ns + "/" + name)
	fakeapi.JSON(w, pod)
}

// serveWatch streams watch events of ns's pods, as client-go expects them:
// one JSON object per line, {"type": ..., "object": ...}.
func (h *hostPods) serveWatch(w http.ResponseWriter, r *http.Request, ns string, main *corev1.Pod) {
	fs, err := fields.ParseSelector(r.URL.Query().Get("fieldSelector"))
	if err != nil {
		fakeapi.Status(w, http.StatusBadRequest, "BadRequest", "fieldSelector: "+err.Error())
		return
	}
	ls, err := labels.Parse(r.URL.Query().Get("labelSelector"))
	if err != nil {
		fakeapi.Status(w, http.StatusBadRequest, "BadRequest", "labelSelector: "+err.Error())
		return
	}
	pw := &podWatcher{ns: ns, fields: fs, labels: ls, ch: make(chan watch.Event, 64)}
	h.mu.Lock()
	// Like a watch from resourceVersion 0: the current state first.
	var initial []*corev1.Pod
	if main != nil && main.Namespace == ns {
		initial = append(initial, main)
	}
	for _, hp := range h.pods {
		initial = append(initial, hp.pod.DeepCopy())
	}
	h.watchers[pw] = true
	h.mu.Unlock()
	if fs.String() != "" || !ls.Empty() {
		h.record("watch " + ns + " " + fs.String())
	}
	defer func() {
		h.mu.Lock()
		delete(h.watchers, pw)
		h.mu.Unlock()
	}()
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	flusher, _ := w.(http.Flusher)
	enc := json.NewEncoder(w)
	send := func(t watch.EventType, p *corev1.Pod) error {
		err := enc.Encode(map[string]any{"type": t, "object": p})
		if flusher != nil {
			flusher.Flush()
		}
		return err
	}
	for _, p := range initial {
		if p.Namespace == ns && ls.Matches(labels.Set(p.Labels)) && fs.Matches(fields.Set{"metadata.name": p.Name, "metadata.namespace": p.Namespace}) {
			if send(watch.Added, p) != nil {
				return
			}
		}
	}
	timeout := 5 * time.Minute
	if s := r.URL.Query().Get("timeoutSeconds"); s != "" {
		var n int
		if _, err := fmt.Sscan(s, &n); err == nil && n > 0 {
			timeout = time.Duration(n) * time.Second
		}
	}
	ctx, cancel := context.WithTimeout(r.Context(), timeout)
	defer cancel()
	for {
		select {
		case <-ctx.Done():
			return
		case ev := <-pw.ch:
			if send(ev.Type, ev.Object.(*corev1.Pod)) != nil {
				return
			}
		}
	}
}

// stopAll stops every host pod (the lab is closing).
func (h *hostPods) stopAll() {
	h.mu.Lock()
	var stops []func()
	for k, hp := range h.pods {
		if hp.stop != nil {
			stops = append(stops, hp.stop)
		}
		delete(h.pods, k)
	}
	h.mu.Unlock()
	for _, s := range stops {
		s()
	}
}
