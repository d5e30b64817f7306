// Package fakeapi holds the pieces of a Kubernetes apiserver that pftap's
// lab apiserver and its recorded apiserver share: discovery, Status
// errors, a running pod and its table, as real kubectl expects them.
package fakeapi

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// Discovery answers /version (Kubernetes 1.minor, gitVersion), /api,
// /apis and /api/v1 and reports whether the request was one of those.
func Discovery(w http.ResponseWriter, r *http.Request, minor int, gitVersion string) bool {
	switch strings.Trim(r.URL.Path, "/") {
	case "version":
		JSON(w, map[string]string{"major": "1", "minor": strconv.Itoa(minor), "gitVersion": gitVersion, "platform": "linux/amd64"})
	case "api":
		JSON(w, &metav1.APIVersions{TypeMeta: metav1.TypeMeta{Kind: "APIVersions"}, Versions: []string{"v1"},
			ServerAddressByClientCIDRs: []metav1.ServerAddressByClientCIDR{{ClientCIDR: "0.0.0.0/0", ServerAddress: r.Host}}})
	case "apis":
		apps := metav1.GroupVersionForDiscovery{GroupVersion: "apps/v1", Version: "v1"}
		JSON(w, &metav1.APIGroupList{TypeMeta: metav1.TypeMeta{Kind: "APIGroupList", APIVersion: "v1"},
			Groups: []metav1.APIGroup{{Name: "apps", Versions: []metav1.GroupVersionForDiscovery{apps}, PreferredVersion: apps}}})
	case "apis/apps/v1":
		JSON(w, &metav1.APIResourceList{TypeMeta: metav1.TypeMeta{Kind: "APIResourceList", APIVersion: "v1"}, GroupVersion: "apps/v1",
			APIResources: []metav1.APIResource{
				{Name: "deployments", SingularName: "deployment", Namespaced: true, Kind: "Deployment", ShortNames: []string{"deploy"}, Verbs: []string{"get", "list"}},
			}})
	case "api/v1":
		JSON(w, &metav1.APIResourceList{TypeMeta: metav1.TypeMeta{Kind: "APIResourceList", APIVersion: "v1"}, GroupVersion: "v1",
			APIResources: []metav1.APIResource{
				{Name: "pods", SingularName: "pod", Namespaced: true, Kind: "Pod", ShortNames: []string{"po"}, Verbs: []string{"get", "list"}},
				{Name: "pods/portforward", Namespaced: true, Kind: "PodPortForwardOptions", Verbs: []string{"create", "get"}},
				{Name: "nodes", SingularName: "node", Kind: "Node", ShortNames: []string{"no"}, Verbs: []string{"get"}},
				{Name: "services", SingularName: "service", Namespaced: true, Kind: "Service", ShortNames: []string{"svc"}, Verbs: []string{"get", "list"}},
			}})
	default:
		return false
	}
	return true
}

// JSON writes v as a 200 application/json response.
func JSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}

// Status writes a metav1.Status failure, as the apiserver reports errors.
func Status(w http.ResponseWriter, code int, reason, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(&metav1.Status{TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"},
		Status: metav1.StatusFailure, Message: msg, Reason: metav1.StatusReason(reason), Code: int32(code)})
}

// Pod returns a running, ready pod with one container serving port 80.
func Pod(namespace, name, ip string, started time.Time) *corev1.Pod {
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

// Service returns a ClusterIP service selecting the pods labelled
// app=name, port 80 ("http") to the pods' port named "http".
func Service(namespace, name string, created time.Time) *corev1.Service {
	return &corev1.Service{
		TypeMeta: metav1.TypeMeta{Kind: "Service", APIVersion: "v1"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace, UID: "5f1c2b7e-0d7a-4d2e-8f43-1b9c6a0e2d11",
			ResourceVersion: "1", CreationTimestamp: metav1.NewTime(created)},
		Spec: corev1.ServiceSpec{Selector: map[string]string{"app": name}, Type: corev1.ServiceTypeClusterIP, ClusterIP: "10.96.0.80",
			Ports: []corev1.ServicePort{{Name: "http", Port: 80, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromString("http")}}},
	}
}

// Deployment returns a deployment of one replica selecting app=name.
func Deployment(namespace, name string, created time.Time) *appsv1.Deployment {
	one := int32(1)
	sel := map[string]string{"app": name}
	return &appsv1.Deployment{
		TypeMeta: metav1.TypeMeta{Kind: "Deployment", APIVersion: "apps/v1"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace, UID: "8b3e0f52-2c4d-4a5b-9e61-7d0c3f2a4b90",
			ResourceVersion: "1", CreationTimestamp: metav1.NewTime(created)},
		Spec: appsv1.DeploymentSpec{Replicas: &one, Selector: &metav1.LabelSelector{MatchLabels: sel},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: sel}}},
		Status: appsv1.DeploymentStatus{Replicas: 1, ReadyReplicas: 1, AvailableReplicas: 1, UpdatedReplicas: 1},
	}
}

// WantsTable reports whether kubectl asked for server-side printing.
func WantsTable(r *http.Request) bool { return strings.Contains(r.Header.Get("Accept"), "as=Table") }

// PodTable is what `kubectl get pods` prints: the columns of the real
// apiserver's pod table.
func PodTable(pods []corev1.Pod) *metav1.Table {
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

// Node is a Ready node at addr whose kubelet is kubeletVersion and
// declares the features declared (status.declaredFeatures).
func Node(name, addr, kubeletVersion string, declared []string, created time.Time) *corev1.Node {
	return &corev1.Node{TypeMeta: metav1.TypeMeta{Kind: "Node", APIVersion: "v1"},
		ObjectMeta: metav1.ObjectMeta{Name: name, UID: "pftap-lab-node-uid", ResourceVersion: "1", CreationTimestamp: metav1.NewTime(created),
			Labels: map[string]string{"kubernetes.io/hostname": name, "kubernetes.io/os": "linux"}},
		Status: corev1.NodeStatus{
			Conditions:       []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady"}},
			Addresses:        []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: addr}, {Type: corev1.NodeHostName, Address: name}},
			DaemonEndpoints:  corev1.NodeDaemonEndpoints{KubeletEndpoint: corev1.DaemonEndpoint{Port: 10250}},
			NodeInfo:         corev1.NodeSystemInfo{KubeletVersion: kubeletVersion, OperatingSystem: "linux", Architecture: "amd64", ContainerRuntimeVersion: "pftap-lab://1"},
			DeclaredFeatures: declared,
		}}
}
