package decode

import (
	"fmt"
	"regexp"
	"strings"
)

var (
	refusedPort = regexp.MustCompile(`(?:port|localhost:)\s*(\d+)`)
)

// Diagnose explains a failure event in a sentence a person can act on: the
// text a runtime wrote on an error stream, a refused upgrade, a reset. It
// returns "" for events that are not failures or that it cannot explain.
func Diagnose(e *Event) string {
	switch e.Kind {
	case KindStreamError:
		if e.Error != nil {
			return DiagnoseStreamError(*e.Error)
		}
		return DiagnoseStreamError(e.Text)
	case KindHTTPResponse:
		if e.Status == 101 || e.Status < 300 {
			return ""
		}
		return diagnoseStatus(e.Status, e.Text)
	}
	return ""
}

// DiagnoseStreamError explains the text a kubelet or runtime wrote on a
// port-forward error stream.
func DiagnoseStreamError(msg string) string {
	low := strings.ToLower(msg)
	port := ""
	if m := refusedPort.FindStringSubmatch(msg); m != nil {
		port = m[1]
	}
	switch {
	case strings.Contains(low, "connection refused"):
		return fmt.Sprintf("nothing is listening on port %s on the pod's loopback: the runtime entered the pod's network namespace "+
			"and dialled localhost:%s, which refused. Either no process listens on that port, or the app listens only on the "+
			"pod's IP (bind it to 0.0.0.0 or localhost too): port-forward always connects to localhost inside the pod", port, port)
	case strings.Contains(low, "socat not found") || strings.Contains(low, "executable file not found"):
		return "the node's runtime forwards with socat/nsenter and cannot find them: install socat on the node (dockershim-style runtimes)"
	case strings.Contains(low, "sandbox") && (strings.Contains(low, "not found") || strings.Contains(low, "does not exist")),
		strings.Contains(low, "no such container"), strings.Contains(low, "container not found"):
		return "the pod's sandbox is gone (the pod was deleted, evicted or restarted since the port-forward began): start port-forward again"
	case strings.Contains(low, "timed out waiting for streams") || strings.Contains(low, "timeout waiting for"):
		return "stream-creation timeout: the side that wrote this got one of the request's two streams (error, data) but not the other in time; " +
			"where the other stopped is for the legs to tell (the session's diagnosis)"
	case strings.Contains(low, "network namespace") || strings.Contains(low, "netns"):
		return "the runtime could not enter the pod's network namespace: the pod may be terminating"
	case strings.Contains(low, "i/o timeout") || strings.Contains(low, "no route to host"):
		return fmt.Sprintf("the runtime's connection to localhost:%s inside the pod timed out: a firewall rule inside the pod, or an app that accepts but never answers", port)
	}
	return ""
}

func diagnoseStatus(status int, text string) string {
	low := strings.ToLower(text)
	switch {
	case status == 401:
		return "401: the apiserver did not accept the credentials (expired token, wrong client certificate, an exec plugin that failed)"
	case status == 403 && strings.Contains(low, "pods/portforward"):
		return "403: RBAC forbids this: the user needs the verb create (and get) on pods/portforward in the pod's namespace"
	case status == 403:
		return "403: forbidden (RBAC, or an admission webhook or policy that blocks port-forward)"
	case status == 404:
		return "404: the pod does not exist (or not in this namespace), or the server does not serve pods/portforward"
	case status == 400 && strings.Contains(low, "query parameter") && strings.Contains(low, "port") && strings.Contains(low, "required"):
		return "400 from the kubelet: a WebSocket tunnel reached a kubelet that cannot take it (it wants the ports in the query, the channel protocol): " +
			"an apiserver before 1.31 passes WebSocket on as it is, or a 1.36+ apiserver took the node for one that declares ExtendWebSocketsToKubelet " +
			"while its kubelet has the gate off; clients fall back to SPDY/3.1"
	case status == 400 && (strings.Contains(low, "websocket") || strings.Contains(low, "upgrade")):
		return "400: the apiserver refused the upgrade; for WebSocket this is an apiserver before 1.31 (or one with the tunnel disabled): clients fall back to SPDY/3.1"
	case status == 502 || status == 503:
		return fmt.Sprintf("%d: the apiserver could not reach the kubelet on the pod's node (:10250 blocked, the node down, or konnectivity)", status)
	case status >= 500:
		return fmt.Sprintf("%d: the apiserver or kubelet failed while upgrading", status)
	}
	return ""
}
