package lab

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/pftap/pftap/internal/fakeapi"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/proxy"
	proxyutil "k8s.io/apiserver/pkg/util/proxy"
	"k8s.io/streaming/pkg/httpstream/wsstream"
)

// apiserver is the lab's control plane: what kubectl needs for
// `kubectl port-forward pod/NAME`, and pods/portforward proxied with the
// upstream upgrade-aware proxy and WebSocket tunnelling handler.
type apiserver struct {
	token string
	// version is the release the apiserver behaves as; refuseWS makes it
	// answer every WebSocket port-forward with 400.
	version  Version
	refuseWS bool
	pod      *corev1.Pod
	// other is the second pod (Config.OtherPod), or nil.
	other *corev1.Pod
	// node is the pod's Node, with the features its kubelet declares.
	node *corev1.Node
	// location returns where to proxy a port-forward (the kubelet), and
	// transport how to reach it.
	location  func(r *http.Request) (*url.URL, error)
	transport *http.Transport
	// hosts are the pods created through the API (pftap's agent).
	hosts *hostPods
	// deny refuses pods/portforward as RBAC would.
	deny bool
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
	if fakeapi.Discovery(w, r, a.version.Minor, a.version.GitVersion()) {
		return
	}
	p := strings.Trim(r.URL.Path, "/")
	parts := strings.Split(p, "/")
	switch {
	case len(parts) == 4 && parts[0] == "api" && parts[1] == "v1" && parts[2] == "nodes" && r.Method == http.MethodGet:
		if parts[3] != a.node.Name {
			a.status(w, http.StatusNotFound, "NotFound", fmt.Sprintf("nodes %q not found", parts[3]))
			return
		}
		a.json(w, a.node)
	case len(parts) == 5 && parts[0] == "api" && parts[1] == "v1" && parts[2] == "namespaces" && parts[4] == "pods" && r.Method == http.MethodPost:
		a.hosts.create(w, r, parts[3])
	case len(parts) == 5 && parts[0] == "api" && parts[1] == "v1" && parts[2] == "namespaces" && parts[4] == "pods" && r.URL.Query().Get("watch") == "true":
		a.hosts.serveWatch(w, r, parts[3], a.pod)
	case len(parts) == 5 && parts[0] == "api" && parts[1] == "v1" && parts[2] == "namespaces" && parts[4] == "pods":
		list := &corev1.PodList{TypeMeta: metav1.TypeMeta{Kind: "PodList", APIVersion: "v1"}, ListMeta: metav1.ListMeta{ResourceVersion: "1"}}
		sel, err := labels.Parse(r.URL.Query().Get("labelSelector"))
		if err != nil {
			a.status(w, http.StatusBadRequest, "BadRequest", "labelSelector: "+err.Error())
			return
		}
		if parts[3] == a.pod.Namespace && sel.Matches(labels.Set(a.pod.Labels)) {
			list.Items = []corev1.Pod{*a.pod}
		}
		if o := a.other; o != nil && parts[3] == o.Namespace && sel.Matches(labels.Set(o.Labels)) {
			list.Items = append(list.Items, *o)
		}
		list.Items = append(list.Items, a.hosts.list(parts[3], sel)...)
		if fakeapi.WantsTable(r) {
			a.json(w, fakeapi.PodTable(list.Items))
			return
		}
		a.json(w, list)
	case len(parts) >= 6 && parts[0] == "api" && parts[1] == "v1" && parts[2] == "namespaces" && parts[4] == "pods" && a.hosts.get(parts[3], parts[5]) != nil:
		switch {
		case len(parts) == 6 && r.Method == http.MethodGet:
			a.json(w, a.hosts.get(parts[3], parts[5]))
		case len(parts) == 6 && r.Method == http.MethodDelete:
			a.hosts.remove(w, parts[3], parts[5])
		case len(parts) == 7 && parts[6] == "portforward":
			a.portForward(w, r)
		default:
			a.status(w, http.StatusMethodNotAllowed, "MethodNotAllowed", "the lab serves GET, DELETE and pods/portforward of the pods it runs")
		}
	case len(parts) >= 6 && parts[0] == "api" && parts[1] == "v1" && parts[2] == "namespaces" && parts[4] == "pods" && a.other != nil &&
		parts[3] == a.other.Namespace && parts[5] == a.other.Name:
		switch {
		case len(parts) == 6 && r.Method == http.MethodGet:
			a.json(w, a.other)
		case len(parts) == 7 && parts[6] == "portforward":
			a.portForward(w, r)
		default:
			a.status(w, http.StatusMethodNotAllowed, "MethodNotAllowed", "the lab serves GET pod and pods/portforward only")
		}
	case len(parts) >= 6 && parts[0] == "api" && parts[1] == "v1" && parts[2] == "namespaces" && parts[4] == "pods":
		if parts[3] != a.pod.Namespace || parts[5] != a.pod.Name {
			a.status(w, http.StatusNotFound, "NotFound", fmt.Sprintf("pods %q not found", parts[5]))
			return
		}
		switch {
		case len(parts) == 6 && r.Method == http.MethodGet && fakeapi.WantsTable(r):
			a.json(w, fakeapi.PodTable([]corev1.Pod{*a.pod}))
		case len(parts) == 6 && r.Method == http.MethodGet:
			a.json(w, a.pod)
		case len(parts) == 7 && parts[6] == "portforward":
			a.portForward(w, r)
		default:
			a.status(w, http.StatusMethodNotAllowed, "MethodNotAllowed", "the lab serves GET pod and pods/portforward only")
		}
	case len(parts) == 6 && parts[0] == "api" && parts[2] == "namespaces" && parts[4] == "services" && r.Method == http.MethodGet:
		if parts[3] != a.pod.Namespace || parts[5] != a.pod.Name {
			a.status(w, http.StatusNotFound, "NotFound", fmt.Sprintf("services %q not found", parts[5]))
			return
		}
		a.json(w, fakeapi.Service(a.pod.Namespace, a.pod.Name, a.pod.CreationTimestamp.Time))
	case len(parts) == 7 && parts[0] == "apis" && parts[1] == "apps" && parts[3] == "namespaces" && parts[5] == "deployments" && r.Method == http.MethodGet:
		if parts[4] != a.pod.Namespace || parts[6] != a.pod.Name {
			a.status(w, http.StatusNotFound, "NotFound", fmt.Sprintf("deployments.apps %q not found", parts[6]))
			return
		}
		a.json(w, fakeapi.Deployment(a.pod.Namespace, a.pod.Name, a.pod.CreationTimestamp.Time))
	default:
		a.status(w, http.StatusNotFound, "NotFound", "the server could not find the requested resource")
	}
}

func (a *apiserver) portForward(w http.ResponseWriter, r *http.Request) {
	if a.deny {
		parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
		a.status(w, http.StatusForbidden, "Forbidden", fmt.Sprintf(`pods %q is forbidden: User "pftap-lab-user" cannot create resource "pods/portforward" in API group "" in the namespace %q`, parts[5], parts[3]))
		return
	}
	loc, err := a.location(r)
	if err != nil {
		a.status(w, http.StatusInternalServerError, "InternalError", err.Error())
		return
	}
	loc.RawQuery = r.URL.RawQuery
	upgrade := proxy.NewUpgradeAwareHandler(loc, a.transport, false, true, responder{a})
	upgrade.MaxBytesPerSec = 0
	var h http.Handler = upgrade
	switch {
	case a.refuseWS && wsstream.IsWebSocketRequest(r):
		a.status(w, http.StatusBadRequest, "BadRequest", "unable to upgrade: WebSocket is refused on the way to this (lab) apiserver")
		return
	case a.version.ExtendsWebSocketsToKubelet() && declares(a.node, FeatureExtendWebSocketsToKubelet):
		// As PortForwardREST.Connect does since 1.36 for a node that
		// declares ExtendWebSocketsToKubelet: the plain upgrade-aware
		// proxy; the kubelet takes the client's WebSocket itself.
	case a.version.TunnelsWebSocket():
		// As the apiserver does since 1.31: a WebSocket request that asks
		// for the SPDY tunnel is answered here and translated to a SPDY
		// upgrade towards the kubelet.
		h = proxyutil.NewTranslatingHandler(upgrade, proxyutil.NewTunnelingHandler(upgrade), wsstream.IsWebSocketRequestWithTunnelingProtocol)
	default:
		// Before 1.31: no tunnelling; a WebSocket request goes on to the
		// kubelet as it is (which refuses it).
	}
	h.ServeHTTP(w, r)
}

type responder struct{ a *apiserver }

func (r responder) Error(w http.ResponseWriter, req *http.Request, err error) {
	// An API error keeps its code (the proxy's "Upgrade request
	// required" is a 400, as upstream answers it).
	var st apierrors.APIStatus
	if errors.As(err, &st) {
		s := st.Status()
		r.a.status(w, int(s.Code), string(s.Reason), s.Message)
		return
	}
	r.a.status(w, http.StatusBadGateway, "InternalError", err.Error())
}

func (a *apiserver) json(w http.ResponseWriter, v any) { fakeapi.JSON(w, v) }

func (a *apiserver) status(w http.ResponseWriter, code int, reason, msg string) {
	fakeapi.Status(w, code, reason, msg)
}

// declares says whether node declares feature in status.declaredFeatures.
func declares(node *corev1.Node, feature string) bool {
	return node != nil && slices.Contains(node.Status.DeclaredFeatures, feature)
}
