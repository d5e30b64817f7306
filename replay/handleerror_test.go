package replay_test

import (
	"context"
	"sync"

	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
)

var handleErrorMu sync.Mutex

// captureHandleError sends the errors client-go reports through
// runtime.HandleError to ch until the returned function is called.
func captureHandleError(ch chan<- error) func() {
	handleErrorMu.Lock()
	saved := utilruntime.ErrorHandlers
	utilruntime.ErrorHandlers = []utilruntime.ErrorHandler{func(_ context.Context, err error, _ string, _ ...any) {
		select {
		case ch <- err:
		default:
		}
	}}
	return func() {
		utilruntime.ErrorHandlers = saved
		handleErrorMu.Unlock()
	}
}
