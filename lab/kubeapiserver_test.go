//go:build linux

package lab

import (
	"os"
	"strconv"
	"testing"
)

// TestRealAPIServerCurl: kubectl port-forward through the real
// kube-apiserver (PFTAP_KUBE_APISERVER, built by scripts/test.sh), curl
// through the forward; everything removed after.
func TestRealAPIServerCurl(t *testing.T) {
	needRoot(t)
	bin := os.Getenv("PFTAP_KUBE_APISERVER")
	if bin == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("PFTAP_KUBE_APISERVER is not set: scripts/test.sh builds kube-apiserver")
		}
		t.Skip("PFTAP_KUBE_APISERVER is not set (scripts/test.sh builds kube-apiserver from k8s.io/kubernetes)")
	}
	l := startLab(t, Config{APIServerBinary: bin, App: AppNginx})
	if l.APIServerVersion() != "v1.37.2" || l.Config().Kubernetes != (Version{Minor: 37}) {
		t.Errorf("version %q, lab era %v", l.APIServerVersion(), l.Config().Kubernetes)
	}
	f := forward(t, l, 80)
	body, err := curl(t, "http://127.0.0.1:"+strconv.Itoa(f.Local)+"/")
	if err != nil || body != WelcomePage {
		t.Fatalf("curl through kubectl through kube-apiserver: %v\n%s", err, body)
	}
}
