package lab

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// WelcomePage is what the built-in app serves at "/": nginx's welcome page,
// so that the lab looks like the classic port-forward demo.
const WelcomePage = `<!DOCTYPE html>
<html>
<head>
<title>Welcome to nginx!</title>
</head>
<body>
<h1>Welcome to nginx!</h1>
<p>If you see this page, the nginx web server is successfully installed and
working. (Served by pftap's lab app inside the pod's network namespace.)</p>
</body>
</html>
`

// MaxBytes bounds /bytes?n=N.
const MaxBytes = 8 << 30

// AppRequest is one request the built-in app received, as it logged it.
type AppRequest struct {
	Time   time.Time
	Remote string // the peer address on the pod's lo
	Method string
	Path   string
	Bytes  int64 // response body bytes written
}

// App is the lab's built-in HTTP server: "/" a welcome page, "/bytes?n=N" N
// bytes of a non-zero pattern, "/echo" the request body back.
type App struct {
	srv *http.Server
	mu  sync.Mutex
	log []AppRequest
	// onRecord, when set, is also given each request (under mu).
	onRecord func(AppRequest)
}

// Pattern returns byte i of the /bytes body: a repeating non-zero sequence
// that makes reordering and loss visible.
func Pattern(i int64) byte { return byte(i%251) + 1 }

// NewApp returns an App; Serve starts it on a listener.
func NewApp() *App {
	a := &App{}
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/html")
		w.Header().Set("Server", "pftap-lab-app")
		n, _ := io.WriteString(w, WelcomePage)
		a.record(r, int64(n))
	})
	mux.HandleFunc("/bytes", func(w http.ResponseWriter, r *http.Request) {
		n, err := strconv.ParseInt(r.URL.Query().Get("n"), 10, 64)
		if err != nil || n < 0 || n > MaxBytes {
			http.Error(w, "n must be a byte count up to 8 GiB", http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Length", strconv.FormatInt(n, 10))
		bw := bufio.NewWriterSize(w, 64<<10)
		var chunk [251]byte
		for i := range chunk {
			chunk[i] = Pattern(int64(i))
		}
		var sent int64
		for sent < n {
			k := min(int64(len(chunk)), n-sent)
			if _, err := bw.Write(chunk[:k]); err != nil {
				break
			}
			sent += k
		}
		bw.Flush()
		a.record(r, sent)
	})
	mux.HandleFunc("/echo", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/octet-stream")
		n, _ := io.Copy(w, r.Body)
		a.record(r, n)
	})
	a.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	return a
}

func (a *App) record(r *http.Request, n int64) {
	a.mu.Lock()
	req := AppRequest{Time: time.Now(), Remote: r.RemoteAddr, Method: r.Method, Path: r.URL.RequestURI(), Bytes: n}
	a.log = append(a.log, req)
	if a.onRecord != nil {
		a.onRecord(req)
	}
	a.mu.Unlock()
}

// Log returns the requests served so far.
func (a *App) Log() []AppRequest {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]AppRequest(nil), a.log...)
}

// Serve serves on l until Close.
func (a *App) Serve(l net.Listener) error {
	err := a.srv.Serve(l)
	if err == http.ErrServerClosed {
		return nil
	}
	return err
}

// Close stops the app and its connections.
func (a *App) Close() error { return a.srv.Close() }

// String describes the app.
func (a *App) String() string { return fmt.Sprintf("built-in HTTP app (/, /bytes?n=N, /echo)") }
