// Package secret names the credentials pftap never shows or records unless
// asked (--show-secrets): the HTTP headers that carry them and the
// WebSocket subprotocol that carries a bearer token. The decoder hides them
// on screen and in JSON, the capture writer in every recording; both read
// this one list, so that what is hidden on screen is hidden in the file.
package secret
