package secret

import "strings"

// Headers are the lower-case names of the HTTP headers whose values are
// credentials.
var Headers = []string{"authorization", "proxy-authorization", "cookie", "set-cookie", "x-csrf-token"}

// IsHeader reports whether an HTTP header (any case) carries a credential.
func IsHeader(name string) bool {
	for _, h := range Headers {
		if strings.EqualFold(name, h) {
			return true
		}
	}
	return false
}

// KeepsScheme reports whether a credential header's first word is its
// scheme ("Bearer", "Basic"), which stays readable when the rest is hidden.
func KeepsScheme(name string) bool {
	return strings.EqualFold(name, "authorization") || strings.EqualFold(name, "proxy-authorization")
}

// WebSocketTokenPrefix starts a WebSocket subprotocol that carries a bearer
// token (client-go sends the token this way when headers cannot carry it).
const WebSocketTokenPrefix = "base64url.bearer.authorization.k8s.io."
