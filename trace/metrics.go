package trace

import (
	"context"
	"time"

	"github.com/pftap/pftap/session"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/kubernetes"
)

// Routed is how the apiserver routed WebSocket port-forwards, by its own
// metrics (session.Routed).
type Routed = session.Routed

// ReadRouted reads the apiserver's counts. Not being allowed to read
// /metrics is said in Why, not an error.
func ReadRouted(ctx context.Context, cs kubernetes.Interface) Routed {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	body, err := cs.Discovery().RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
	switch {
	case apierrors.IsForbidden(err):
		return Routed{Why: "these credentials may not read the apiserver's /metrics"}
	case apierrors.IsNotFound(err):
		return Routed{Why: "the apiserver serves no /metrics"}
	case err != nil:
		return Routed{Why: "the apiserver's /metrics could not be read: " + err.Error()}
	}
	return session.ParseRouted(string(body))
}
