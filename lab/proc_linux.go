//go:build linux

package lab

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/pftap/pftap/internal/nsenter"
)

// startInPod runs argv inside the pod's network namespace (nsenter --net),
// in its own process group, killed if pftap dies.
func (l *Lab) startInPod(name string, argv ...string) (<-chan struct{}, error) {
	args := append([]string{"--net=" + nsenter.Path(l.PodNetns)}, argv...)
	cmd := exec.Command("nsenter", args...)
	logf, err := os.OpenFile(filepath.Join(l.dir, name+".log"), os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s in the pod: %w", name, err)
	}
	l.pids = append(l.pids, cmd.Process.Pid)
	exited := make(chan struct{})
	go func() {
		cmd.Wait()
		logf.Close()
		close(exited)
	}()
	l.closers = append(l.closers, func() error {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-exited
		return nil
	})
	return exited, nil
}

// waitListening waits until something accepts on localhost:port in the pod.
func (l *Lab) waitListening(ctx context.Context, port int, within time.Duration, what string, exited <-chan struct{}) error {
	deadline := time.Now().Add(within)
	dial := nsDialer(l.PodNetns)
	for {
		c, err := dial(ctx, "tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err == nil {
			c.Close()
			return nil
		}
		select {
		case <-exited:
			return fmt.Errorf("the app (%s) exited before it listened on localhost:%d in the pod%s", what, port, appOutput(l.dir, what))
		default:
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	return fmt.Errorf("the app (%s) did not listen on localhost:%d in the pod within %v%s", what, port, within, appOutput(l.dir, what))
}

// appOutput is what an app printed, for an error message: its last line,
// or that it printed nothing.
func appOutput(dir, what string) string {
	b, _ := os.ReadFile(filepath.Join(dir, what+".log"))
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if last := strings.TrimSpace(lines[len(lines)-1]); last != "" {
		return ": " + last
	}
	return " (it printed nothing)"
}

// nginxConfig serves the welcome page, /bytes?n=N from a file and /echo.
func nginxConfig(dir string, port int) string {
	// Workers run as root, as the master does, so that the lab's
	// directory and its files stay the owner's alone (0700, 0600).
	return fmt.Sprintf(`user root root;
worker_processes 1;
daemon off;
master_process on;
pid %[1]s/nginx.pid;
error_log %[1]s/nginx-error.log warn;
events { worker_connections 1024; }
http {
    access_log %[1]s/nginx-access.log;
    client_body_temp_path %[1]s/nginx-body;
    proxy_temp_path %[1]s/nginx-proxy;
    fastcgi_temp_path %[1]s/nginx-fastcgi;
    uwsgi_temp_path %[1]s/nginx-uwsgi;
    scgi_temp_path %[1]s/nginx-scgi;
    default_type text/html;
    server {
        listen %[2]d;
        listen [::]:%[2]d;
        root %[1]s/www;
        index index.html;
    }
}
`, dir, port)
}
