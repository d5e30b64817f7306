package leg

import (
	"regexp"
	"strings"
)

// ID is a leg's place in the chain, stable whatever the leg is called.
type ID string

// The legs of the chain.
const (
	Unknown ID = ""        // an interface pftap did not make, or cannot place
	User    ID = "user"    // the user's connection to the local port
	Proxy   ID = "proxy"   // the client's connection to its HTTPS proxy, below the proxy's TLS
	L1      ID = "L1"      // client → apiserver, below TLS
	L2      ID = "L2"      // apiserver → kubelet, below TLS
	L2Wire  ID = "L2-wire" // apiserver → kubelet on the wire: TLS records
	L3      ID = "L3"      // kubelet → runtime streaming server
	L4      ID = "L4"      // runtime (or socat) → app, on the pod's lo
	Witness ID = "witness" // the pod's eth0
)

// Order is the leg's place from the client towards the pod (User 0,
// Witness last, Unknown -1).
func (id ID) Order() int {
	switch id {
	case User:
		return 0
	case Proxy:
		return 1
	case L1:
		return 2
	case L2:
		return 3
	case L2Wire:
		return 4
	case L3:
		return 5
	case L4:
		return 6
	case Witness:
		return 7
	}
	return -1
}

// Hop is the leg's place on the way of the bytes to the pod: Order, but
// for the two taps of the apiserver's connection to the kubelet (L2 below
// TLS, L2Wire on the wire), which are one hop: their bytes cross them
// microseconds apart, in an order that depends on where L2 was tapped.
// -1 for Unknown.
func (id ID) Hop() int {
	o := id.Order()
	if id == L2Wire || o > L2Wire.Order() {
		o--
	}
	return o
}

// Leg is one leg of a session: its ID, its display name, and what it
// connects and where it was tapped.
type Leg struct {
	ID ID
	// Name is what people read: "L4 runtime→app", "witness pod eth0".
	Name string
	// Description says what the leg connects and where it was tapped.
	Description string
	// At is the end of its connection the leg is tapped at.
	At End
}

// End is where on its connection a leg is tapped: what a tap inside one
// end records, that end wrote before it left (stamped first) and read
// after it came (stamped last).
type End uint8

const (
	// Between: the packets on a link, or not said.
	Between End = iota
	// ClientEnd: inside the connection's client (below its TLS).
	ClientEnd
	// ServerEnd: inside the connection's server (below its TLS).
	ServerEnd
)

// String is "client", "server" or "".
func (e End) String() string {
	switch e {
	case ClientEnd:
		return "client"
	case ServerEnd:
		return "server"
	}
	return ""
}

var marker = regexp.MustCompile(` \[pftap leg ([A-Za-z0-9-]+)(?: at the (client|server))?\]$`)

// Marker is the description a recording's interface gets for the leg: its
// description with the ID, and the end it is tapped at, at the end.
func (l Leg) Marker() string {
	if l.ID == Unknown {
		return l.Description
	}
	at := ""
	if l.At != Between {
		at = " at the " + l.At.String()
	}
	return l.Description + " [pftap leg " + string(l.ID) + at + "]"
}

// Parse reads a recording's interface: the leg its description's marker
// names (the description returned without it), or, for a recording made
// before pftap wrote markers, the one its name says (FromLegacyName).
func Parse(name, description string) Leg {
	if m := marker.FindStringSubmatchIndex(description); m != nil {
		l := Leg{ID: ID(description[m[2]:m[3]]), Name: name, Description: description[:m[0]]}
		switch {
		case m[4] < 0:
		case description[m[4]:m[5]] == "client":
			l.At = ClientEnd
		default:
			l.At = ServerEnd
		}
		return l
	}
	return Leg{ID: FromLegacyName(name), Name: name, Description: description}
}

// FromLegacyName places a leg by the name pftap gave it before recordings
// carried their legs' IDs ("L1 client→apiserver", "L2 on the wire (TLS)",
// "L4 socat→app", "user→kubectl", "witness pod eth0"). It is for reading
// those recordings only.
func FromLegacyName(name string) ID {
	switch {
	case strings.HasPrefix(name, "user→"):
		return User
	case strings.HasPrefix(name, "L2 on the wire"):
		return L2Wire
	case strings.HasPrefix(name, "L1 "):
		return L1
	case strings.HasPrefix(name, "L2 "):
		return L2
	case strings.HasPrefix(name, "L3 "):
		return L3
	case strings.HasPrefix(name, "L4 "):
		return L4
	case strings.HasPrefix(name, "witness"):
		return Witness
	}
	return Unknown
}
