// Package nsenter runs code inside Linux network namespaces safely.
//
// A network namespace belongs to an OS thread, not to a goroutine. Do
// therefore runs its function on a fresh goroutine locked to its thread,
// switches that thread into the namespace, and switches it back afterwards.
// If the thread cannot be switched back it is never unlocked, so the Go
// runtime ends it with the goroutine instead of reusing a thread that sits
// in the wrong namespace.
//
// Sockets keep the namespace they were created in: open a listener or dial
// inside Do, then use the connection from any goroutine.
//
// On systems other than Linux every function returns an error wrapping
// ErrNotSupported.
package nsenter
