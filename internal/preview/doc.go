// Package preview renders untrusted payload bytes as a short, safe,
// single-line string for summaries and terminals.
package preview
