// Package kubectl runs the real kubectl port-forward as a child process,
// for the recordings tool and for tests against the lab.
package kubectl
