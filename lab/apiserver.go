package lab

import (
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/proxy"
	proxyutil "k8s.io/apiserver/pkg/util/proxy"
	"k8s.io/streaming/pkg/httpstream/wsstream"
)

// apiserver is the lab's control plane: what kubectl needs for
// `kubectl port-forward pod/NAME`, and pods/portforward proxied with the
// upstream upgrade-aware proxy and WebSocket tunnelling handler.
type apiserver struct {
	token     string
	websocket bool
	pod       *corev1.Pod
	// location returns where to proxy a port-forward (the kubelet), and
	// transport how to reach it.
	location  func(r *http.Request) (*url.URL, error)
	transport *http.Transport
}

func (a *apiserver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if a.token != "" {
		got := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		if subtle.ConstantTimeCompare([]byte(got), []byte(a.token)) != 1 {
			a.status(w, http.StatusUnauthorized, "Unauthorized", "Unauthorized")
			return
		}
	}
	// Like the real apiserver's authentication filter: the credential is
	// not passed on (to the kubelet, say).
	r.Header.Del("Authorization")
	p := strings.Trim(r.URL.Path, "/")
	parts := strings.Split(p, "/")
	switch {
	case p == "version":
		a.json(w, map[string]string{"major": "1", "minor": "37", "gitVersion": "v1.37.2-pftap-lab", "platform": "linux/amd64"})
	case p == "api":
		a.json(w, &metav1.APIVersions{TypeMeta: metav1.TypeMeta{Kind: "APIVersions"}, Versions: []string{"v1"},
			ServerAddressByClientCIDRs: []metav1.ServerAddressByClientCIDR{{ClientCIDR: "0.0.0.0/0", ServerAddress: r.Host}}})
	case p == "apis":
		a.json(w, &metav1.APIGroupList{TypeMeta: metav1.TypeMeta{Kind: "APIGroupList", APIVersion: "v1"}, Groups: []metav1.APIGroup{}})
	case p == "api/v1":
		a.json(w, &metav1.APIResourceList{TypeMeta: metav1.TypeMeta{Kind: "APIResourceList", APIVersion: "v1"}, GroupVersion: "v1",
			APIResources: []metav1.APIResource{
				{Name: "pods", SingularName: "pod", Namespaced: true, Kind: "Pod", ShortNames: []string{"po"}, Verbs: []string{"get", "list"}},
				{Name: "pods/portforward", Namespaced: true, Kind: "PodPortForwardOptions", Verbs: []string{"create", "get"}},
			}})
	case len(parts) == 5 && parts[0] == "api" && parts[1] == "v1" && parts[2] == "namespaces" && parts[4] == "pods":
		list := &corev1.PodList{TypeMeta: metav1.TypeMeta{Kind: "PodList", APIVersion: "v1"}, ListMeta: metav1.ListMeta{ResourceVersion: "1"}}
		if parts[3] == a.pod.Namespace {
			list.Items = []corev1.Pod{*a.pod}
		}
		if wantsTable(r) {
			a.json(w, podTable(list.Items))
			return
		}
		a.json(w, list)
	case len(parts) >= 6 && parts[0] == "api" && parts[1] == "v1" && parts[2] == "namespaces" && parts[4] == "pods":
		if parts[3] != a.pod.Namespace || parts[5] != a.pod.Name {
			a.status(w, http.StatusNotFound, "NotFound", fmt.Sprintf("pods %q not found", parts[5]))
			return
		}
		switch {
		case len(parts) == 6 && r.Method == http.MethodGet && wantsTable(r):
			a.json(w, podTable([]corev1.Pod{*a.pod}))
		case len(parts) == 6 && r.Method == http.MethodGet:
			a.json(w, a.pod)
		case len(parts) == 7 && parts[6] == "portforward":
			a.portForward(w, r)
		default:
			a.status(w, http.StatusMethodNotAllowed, "MethodNotAllowed", "the lab serves GET pod and pods/portforward only")
		}
	default:
		a.status(w, http.StatusNotFound, "NotFound", "the server could not find the requested resource")
	}
}

func (a *apiserver) portForward(w http.ResponseWriter, r *http.Request) {
	loc, err := a.location(r)
	if err != nil {
		a.status(w, http.StatusInternalServerError, "InternalError", err.Error())
		return
	}
	loc.RawQuery = r.URL.RawQuery
	upgrade := proxy.NewUpgradeAwareHandler(loc, a.transport, false, true, responder{a})
	upgrade.MaxBytesPerSec = 0
	var h http.Handler = upgrade
	if a.websocket {
		// As the real apiserver does since 1.31: a WebSocket request that
		// asks for the SPDY tunnel is translated to a SPDY upgrade.
		h = proxyutil.NewTranslatingHandler(upgrade, proxyutil.NewTunnelingHandler(upgrade), wsstream.IsWebSocketRequestWithTunnelingProtocol)
	} else if wsstream.IsWebSocketRequest(r) {
		// Like an apiserver from before 1.31: no tunnelling.
		a.status(w, http.StatusBadRequest, "BadRequest", "unable to upgrade: WebSocket port-forward is not enabled on this (lab) apiserver")
		return
	}
	h.ServeHTTP(w, r)
}

type responder struct{ a *apiserver }

func (r responder) Error(w http.ResponseWriter, req *http.Request, err error) {
	r.a.status(w, http.StatusBadGateway, "InternalError", err.Error())
}

func (a *apiserver) json(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}

func (a *apiserver) status(w http.ResponseWriter, code int, reason, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(&metav1.Status{TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"},
		Status: metav1.StatusFailure, Message: msg, Reason: metav1.StatusReason(reason), Code: int32(code)})
}

func labPod(namespace, name, ip string, started time.Time) *corev1.Pod {
	t := metav1.NewTime(started)
	return &corev1.Pod{
		TypeMeta: metav1.TypeMeta{Kind: "Pod", APIVersion: "v1"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace, UID: "0e3d5c0a-6f2b-4c36-9a2e-70f7a4b1c0de",
			ResourceVersion: "1", CreationTimestamp: t, Labels: map[string]string{"app": name}},
		Spec: corev1.PodSpec{NodeName: "pftap-lab-node", Containers: []corev1.Container{{
			Name: name, Image: "pftap-lab/" + name, Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 80, Protocol: corev1.ProtocolTCP}},
		}}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: ip, PodIPs: []corev1.PodIP{{IP: ip}}, StartTime: &t,
			Conditions:        []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}},
			ContainerStatuses: []corev1.ContainerStatus{{Name: name, Ready: true, State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: t}}}}},
	}
}

// wantsTable reports whether kubectl asked for server-side printing.
func wantsTable(r *http.Request) bool { return strings.Contains(r.Header.Get("Accept"), "as=Table") }

// podTable is what `kubectl get pods` prints: the columns of the real
// apiserver's pod table.
func podTable(pods []corev1.Pod) *metav1.Table {
	t := &metav1.Table{TypeMeta: metav1.TypeMeta{Kind: "Table", APIVersion: "meta.k8s.io/v1"},
		ColumnDefinitions: []metav1.TableColumnDefinition{
			{Name: "Name", Type: "string", Format: "name"}, {Name: "Ready", Type: "string"}, {Name: "Status", Type: "string"},
			{Name: "Restarts", Type: "string"}, {Name: "Age", Type: "string"}, {Name: "IP", Type: "string", Priority: 1},
			{Name: "Node", Type: "string", Priority: 1}}}
	for i := range pods {
		p := &pods[i]
		age := time.Since(p.CreationTimestamp.Time).Round(time.Second).String()
		t.Rows = append(t.Rows, metav1.TableRow{Cells: []any{p.Name, "1/1", string(p.Status.Phase), "0", age, p.Status.PodIP, p.Spec.NodeName},
			Object: k8sruntime.RawExtension{Object: &metav1.PartialObjectMetadata{TypeMeta: metav1.TypeMeta{Kind: "PartialObjectMetadata", APIVersion: "meta.k8s.io/v1"}, ObjectMeta: p.ObjectMeta}}})
	}
	return t
}
