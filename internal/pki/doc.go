// Package pki issues the certificates of pftap's lab and recorded
// apiservers (a CA and the server and client certificates it signs) and
// renders the kubeconfig files that point kubectl at them.
package pki
