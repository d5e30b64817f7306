package leg

import "testing"

func TestMarkerRoundTrip(t *testing.T) {
	for _, l := range []Leg{
		{ID: L4, Name: "L4 runtime→app", Description: "the pod's lo, in netns pftap-1-pod"},
		{ID: L2, Name: "L2 apiserver→kubelet", Description: "plaintext inside the kubelet", At: ServerEnd},
		{ID: L1, Name: "L1 client→apiserver", Description: "plaintext inside pftap's client", At: ClientEnd},
		{ID: L2Wire, Name: "the kubelet's TLS", Description: ""},
		{ID: Unknown, Name: "eth0", Description: "a capture of someone's"},
	} {
		if got := Parse(l.Name, l.Marker()); got != l {
			t.Errorf("Parse(Marker(%+v)) = %+v", l, got)
		}
	}
	// A renamed leg keeps its ID: no name is read when the marker is there.
	if got := Parse("whatever it is called now", "x [pftap leg L3]"); got.ID != L3 || got.Description != "x" {
		t.Errorf("renamed: %+v", got)
	}
	// Recordings from before the marker.
	for name, want := range map[string]ID{"L1 client→apiserver": L1, "L2 on the wire (TLS)": L2Wire, "L2 apiserver→kubelet": L2,
		"L3 kubelet→runtime": L3, "L4 socat→app": L4, "user→kubectl": User, "witness pod eth0": Witness, "lo": Unknown} {
		if got := Parse(name, "").ID; got != want {
			t.Errorf("legacy %q: %q, want %q", name, got, want)
		}
	}
	if L1.Order() >= L2.Order() || L2Wire.Order() >= L3.Order() || Unknown.Order() != -1 {
		t.Error("order")
	}
}
