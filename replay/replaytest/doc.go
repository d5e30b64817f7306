// Package replaytest runs package replay's recorded peers in Go tests:
// NewAPIServer, a recorded apiserver for a port-forward client under test,
// and RunClient, a recorded client for a port-forward server under test,
// each reporting every mismatch through the test. It is apart from replay
// so that nothing built into pftap imports testing.
//
//	s, _ := replay.Open("testdata/replay/websocket-get.pcapng")
//	api := replaytest.NewAPIServer(t, s) // api.Config, api.Kubeconfig
//	replaytest.RunClient(t, s, replay.Target{URL: streamingServerURL})
package replaytest
