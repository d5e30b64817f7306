//go:build linux

package lab

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/pftap/pftap/internal/nsenter"
)

// What the containerd runtime needs from the host, and the Debian
// packages that have it.
var containerdNeeds = []struct{ path, pkg string }{
	{"/usr/bin/containerd", "containerd"},
	{"/usr/bin/containerd-shim-runc-v2", "containerd"},
	{"/usr/bin/ctr", "containerd"},
	{"/usr/sbin/runc", "runc"},
	{cniBinDir + "/bridge", "containernetworking-plugins"},
	{cniBinDir + "/host-local", "containernetworking-plugins"},
	{cniBinDir + "/loopback", "containernetworking-plugins"},
}

const cniBinDir = "/usr/lib/cni"

// ContainerdInstalled says, in one line, what to install when the host
// lacks the containerd daemon, runc or the CNI plugins that
// RuntimeContainerd runs.
func ContainerdInstalled() error {
	var missing, pkgs []string
	for _, n := range containerdNeeds {
		p := n.path
		if _, err := os.Stat(p); err != nil {
			if lp, err := exec.LookPath(filepath.Base(p)); err == nil && !strings.HasPrefix(p, cniBinDir) {
				p = lp
			} else {
				missing = append(missing, p)
				if len(pkgs) == 0 || pkgs[len(pkgs)-1] != n.pkg {
					pkgs = append(pkgs, n.pkg)
				}
			}
		}
	}
	if len(missing) == 0 {
		return nil
	}
	return fmt.Errorf("--runtime containerd runs Debian's containerd daemon with runc and the CNI plugins, and %s is missing: apt-get install %s", strings.Join(missing, ", "), strings.Join(pkgs, " "))
}

// containerdBinary is the containerd daemon to run.
func (c Config) containerdBinary() string {
	if c.ContainerdBinary != "" {
		return c.ContainerdBinary
	}
	return "containerd"
}

// containerd is a lab's containerd daemon and the pod it made: its own
// root, state, socket and configuration under the lab's directory, run in
// the node's network namespace, the pod's sandbox made through CNI (a
// bridge on the node, host-local addresses from the lab's subnet).
type containerd struct {
	dir    string // LABDIR/containerd
	sock   string
	cmd    *exec.Cmd
	exited chan struct{}
	conn   *grpc.ClientConn
	rt     runtimeapi.RuntimeServiceClient
	// The pod: its sandbox and app container, the sandbox's network
	// namespace (CNI's /var/run/netns/cni-...), its IP on eth0.
	sandbox, container string
	netns              string
	podIP              netip.Addr
	// streaming is containerd's streaming server on the node's lo.
	streaming netip.AddrPort
	logPath   string
	// appLogPath is the app container's log (CRI format).
	appLogPath string
	// cgroupParent holds every container's cgroup, in each hierarchy.
	cgroupParent string
	network      string
	// frozen: stopped with SIGSTOP (Lab.FreezeRuntime).
	frozen bool
	// v2 says the daemon is containerd 2.x (configuration version 3);
	// shim is its runc shim (beside it, as 2.x needs its own release's).
	v2   bool
	shim string
}

// containerdConfig is the daemon's configuration: only what the CRI
// plugin needs, the native snapshotter (no overlay here), oom_score_adj
// left to what an unprivileged-looking host allows.
func (c *containerd) config() string {
	if c.v2 {
		return c.configV3()
	}
	return fmt.Sprintf(`version = 2
%[10]s[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = %[6]q
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  restrict_oom_score_adj = true
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "native"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        Root = %[9]q
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = %[7]q
    conf_dir = %[8]q
    max_conf_num = 1
`, filepath.Join(c.dir, "root"), filepath.Join(c.dir, "state"), c.sock, c.sock+".ttrpc", filepath.Join(c.dir, "opt"),
		labImageRef, cniBinDir, filepath.Join(c.dir, "net.d"), filepath.Join(c.dir, "runc"), c.configHead())
}

// configHead is what both configuration versions begin with: the
// daemon's own directories, sockets and plugins.
func (c *containerd) configHead() string {
	return fmt.Sprintf(`root = %q
state = %q
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.overlayfs", "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]

[grpc]
  address = %q
[ttrpc]
  address = %q
[debug]
  address = ""
[metrics]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = %q
`, filepath.Join(c.dir, "root"), filepath.Join(c.dir, "state"), c.sock, c.sock+".ttrpc", filepath.Join(c.dir, "opt"))
}

// configV3 is config for containerd 2.x, whose CRI plugin is split in
// images and runtime plugins: the same choices, the native snapshotter
// also for the transfer service's unpacking.
func (c *containerd) configV3() string {
	return fmt.Sprintf(`version = 3
%[12]s[plugins."io.containerd.cri.v1.images"]
  snapshotter = "native"
  [plugins."io.containerd.cri.v1.images".pinned_images]
    sandbox = %[6]q
[plugins."io.containerd.cri.v1.runtime"]
  restrict_oom_score_adj = true
  enable_selinux = false
  [plugins."io.containerd.cri.v1.runtime".containerd]
    default_runtime_name = "runc"
    [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      runtime_path = %[11]q
      snapshotter = "native"
      [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc.options]
        Root = %[9]q
  [plugins."io.containerd.cri.v1.runtime".cni]
    bin_dirs = [%[7]q]
    conf_dir = %[8]q
    max_conf_num = 1
[plugins."io.containerd.grpc.v1.cri"]
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
[plugins."io.containerd.transfer.v1.local"]
  [[plugins."io.containerd.transfer.v1.local".unpack_config]]
    platform = "linux/%[10]s"
    snapshotter = "native"
`, filepath.Join(c.dir, "root"), filepath.Join(c.dir, "state"), c.sock, c.sock+".ttrpc", filepath.Join(c.dir, "opt"),
		labImageRef, cniBinDir, filepath.Join(c.dir, "net.d"), filepath.Join(c.dir, "runc"), goruntime.GOARCH, c.shim, c.configHead())
}

// cniConfig is the pod network: a bridge in the node's namespace, the
// pod's addresses from the upper half of the lab's /24, the node the
// pod's gateway.
func (c *containerd) cniConfig(subnet netip.Prefix, bridge string) string {
	b := subnet.Masked().Addr().As4()
	at := func(n byte) string { x := b; x[3] = n; return netip.AddrFrom4(x).String() }
	conf := map[string]any{
		"cniVersion": "0.4.0",
		"name":       c.network,
		"plugins": []any{
			map[string]any{"type": "bridge", "bridge": bridge, "isGateway": true, "ipMasq": false, "hairpinMode": false,
				"ipam": map[string]any{"type": "host-local", "dataDir": filepath.Join(c.dir, "ipam"),
					"ranges": [][]map[string]string{{{"subnet": at(128) + "/25", "rangeStart": at(130), "rangeEnd": at(254), "gateway": at(129)}}},
					"routes": []map[string]string{{"dst": "0.0.0.0/0"}}}},
		},
	}
	out, _ := json.MarshalIndent(conf, "", "  ")
	return string(out)
}

// startContainerd starts the lab's containerd in the node's namespace and
// builds the pod: image imported, sandbox through CNI, the app started
// and listening.
func (l *Lab) startContainerd(ctx context.Context) (err error) {
	if err := ContainerdInstalled(); err != nil {
		return err
	}
	c := &containerd{dir: filepath.Join(l.dir, "containerd"), network: l.cfg.Name, cgroupParent: "/" + l.cfg.Name,
		v2: strings.HasPrefix(containerdVersion(l.cfg.containerdBinary()), "2.")}
	if c.v2 {
		// A 2.x daemon starts its shims with a protocol 1.x shims do not
		// speak: its own release's, beside it.
		bin, err := exec.LookPath(l.cfg.containerdBinary())
		if err != nil {
			return err
		}
		c.shim = filepath.Join(filepath.Dir(bin), "containerd-shim-runc-v2")
		if _, err := os.Stat(c.shim); err != nil {
			return fmt.Errorf("containerd %s needs its own runc shim beside it (%s): go install github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2 of the same release there", containerdVersion(bin), c.shim)
		}
	}
	c.sock = filepath.Join(c.dir, "containerd.sock")
	c.logPath = filepath.Join(l.dir, "containerd.log")
	c.appLogPath = filepath.Join(c.dir, "logs", "app.log")
	l.containerd = c
	l.closers = append(l.closers, c.close)
	for _, d := range []string{"root", "state", "opt", "net.d", "ipam", "logs", "runc"} {
		if err := os.MkdirAll(filepath.Join(c.dir, d), 0o700); err != nil {
			return err
		}
	}
	if err := os.WriteFile(filepath.Join(c.dir, "config.toml"), []byte(c.config()), 0o600); err != nil {
		return err
	}
	bridge := "pftap" + strconv.Itoa(int(l.addr.subnet.Addr().As4()[2])) + "b"
	if err := os.WriteFile(filepath.Join(c.dir, "net.d", "10-pftap.conflist"), []byte(c.cniConfig(l.addr.subnet, bridge)), 0o600); err != nil {
		return err
	}
	if err := l.writeState(); err != nil {
		return err
	}
	// The image is built while containerd starts.
	type built struct {
		path string
		err  error
	}
	imageDone := make(chan built, 1)
	go func() {
		p, err := buildLabImage(l.dir, l.cfg.App == AppNginx)
		imageDone <- built{p, err}
	}()
	defer func() {
		if b, ok := <-imageDone; ok && b.path != "" {
			os.Remove(b.path)
		}
	}()

	logf, err := os.OpenFile(c.logPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	// nsenter --net, not ip netns exec: that one remounts /sys, and
	// containerd then finds no cgroup mounts.
	c.cmd = exec.Command("nsenter", "--net="+nsenter.Path(l.NodeNetns), l.cfg.containerdBinary(), "--config", filepath.Join(c.dir, "config.toml"))
	c.cmd.Stdout, c.cmd.Stderr = logf, logf
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := c.cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("start containerd: %w", err)
	}
	logf.Close()
	l.pids = append(l.pids, c.cmd.Process.Pid)
	c.exited = make(chan struct{})
	go func() { c.cmd.Wait(); close(c.exited) }()
	if err := l.writeState(); err != nil {
		return err
	}
	if err := c.connect(ctx); err != nil {
		return err
	}
	b := <-imageDone
	close(imageDone)
	defer os.Remove(b.path)
	if b.err != nil {
		return fmt.Errorf("the lab's image: %w", b.err)
	}
	if err := c.importImage(ctx, b.path); err != nil {
		return err
	}
	if l.cfg.KubeletBinary != "" {
		return nil // the real kubelet makes the pod (adopt)
	}
	if err := c.runPod(ctx, l); err != nil {
		return err
	}
	return c.podUp(ctx, l)
}

// podUp makes the pod containerd runs the lab's: its namespace and IP
// recorded, its app listening, and the streaming server's address, which
// a PortForward call says (it listens on a port of its own choosing).
func (c *containerd) podUp(ctx context.Context, l *Lab) error {
	l.PodNetns = c.netns
	l.addr.pod = c.podIP
	if err := l.writeState(); err != nil {
		return err
	}
	if err := l.waitListening(ctx, l.cfg.AppPort, 10*time.Second, "app", c.exited); err != nil {
		return fmt.Errorf("%w%s", err, c.appLogTail())
	}
	u, err := c.portForwardURL(ctx, c.sandbox)
	if err != nil {
		return err
	}
	ap, err := netip.ParseAddrPort(u.Host)
	if err != nil {
		return fmt.Errorf("containerd's streaming URL %s: %v", u, err)
	}
	c.streaming = ap
	l.StreamingAddr = net.TCPAddrFromAddrPort(ap)
	return nil
}

// connect waits for containerd's CRI service to answer.
func (c *containerd) connect(ctx context.Context) error {
	conn, err := grpc.NewClient("unix://"+c.sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	c.conn = conn
	c.rt = runtimeapi.NewRuntimeServiceClient(conn)
	deadline := time.Now().Add(15 * time.Second)
	for {
		cctx, cancel := context.WithTimeout(ctx, time.Second)
		st, err := c.rt.Status(cctx, &runtimeapi.StatusRequest{})
		cancel()
		if err == nil {
			ready := map[string]bool{}
			var why []string
			for _, cond := range st.GetStatus().GetConditions() {
				ready[cond.Type] = cond.Status
				if !cond.Status {
					why = append(why, cond.Type+": "+cond.Reason+" "+cond.Message)
				}
			}
			if ready[runtimeapi.RuntimeReady] && ready[runtimeapi.NetworkReady] {
				return nil
			}
			err = errors.New(strings.Join(why, "; "))
		}
		select {
		case <-c.exited:
			return fmt.Errorf("containerd exited at start%s", c.logTail())
		default:
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("containerd's CRI service did not become ready within 15s: %v%s", err, c.logTail())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// importImage imports the lab's image tarball, as `ctr images import`
// does on a node with no registry.
func (c *containerd) importImage(ctx context.Context, tarball string) error {
	cmd := exec.CommandContext(ctx, "ctr", "--address", c.sock, "--namespace", "k8s.io", "images", "import", "--snapshotter", "native", tarball)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("ctr images import: %v: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}

// runPod makes the pod as the kubelet does over CRI: RunPodSandbox (the
// pause process, the network through CNI), then CreateContainer and
// StartContainer for the app.
func (c *containerd) runPod(ctx context.Context, l *Lab) error {
	cfg := l.cfg
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	sc := &runtimeapi.PodSandboxConfig{
		Metadata:     &runtimeapi.PodSandboxMetadata{Name: cfg.Pod, Namespace: cfg.Namespace, Uid: podUID},
		Hostname:     cfg.Pod,
		LogDirectory: filepath.Join(c.dir, "logs"),
		Labels:       map[string]string{"io.kubernetes.pod.name": cfg.Pod, "io.kubernetes.pod.namespace": cfg.Namespace, "pftap.lab": cfg.Name},
		Linux: &runtimeapi.LinuxPodSandboxConfig{CgroupParent: c.cgroupParent,
			SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{NamespaceOptions: &runtimeapi.NamespaceOption{Network: runtimeapi.NamespaceMode_POD, Pid: runtimeapi.NamespaceMode_CONTAINER, Ipc: runtimeapi.NamespaceMode_POD}}},
	}
	resp, err := c.rt.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: sc})
	if err != nil {
		return fmt.Errorf("containerd RunPodSandbox: %v%s", err, c.logTail())
	}
	c.sandbox = resp.PodSandboxId
	st, err := c.rt.PodSandboxStatus(ctx, &runtimeapi.PodSandboxStatusRequest{PodSandboxId: c.sandbox, Verbose: true})
	if err != nil {
		return fmt.Errorf("containerd PodSandboxStatus: %v", err)
	}
	ip, err := netip.ParseAddr(st.GetStatus().GetNetwork().GetIp())
	if err != nil {
		return fmt.Errorf("the pod sandbox has no IP from CNI: %v", err)
	}
	c.podIP = ip
	if c.netns, err = sandboxNetns(st.GetInfo()["info"]); err != nil {
		return err
	}
	cc := &runtimeapi.ContainerConfig{
		Metadata: &runtimeapi.ContainerMetadata{Name: "app"},
		Image:    &runtimeapi.ImageSpec{Image: labImageRef},
		LogPath:  "app.log",
		Labels:   map[string]string{"io.kubernetes.container.name": "app"},
		Linux:    &runtimeapi.LinuxContainerConfig{SecurityContext: &runtimeapi.LinuxContainerSecurityContext{NamespaceOptions: sc.Linux.SecurityContext.NamespaceOptions}},
	}
	switch cfg.App {
	case AppBuiltin:
		cc.Command = []string{labBinary}
		cc.Envs = []*runtimeapi.KeyValue{{Key: roleEnv, Value: []byte(roleApp)}, {Key: appPortEnv, Value: []byte(strconv.Itoa(cfg.AppPort))}}
	case AppNginx:
		// nginx's configuration, page and logs are the lab's files, at the
		// same path in the container.
		conf, err := l.nginxFiles()
		if err != nil {
			return err
		}
		cc.Command = []string{nginxPath, "-c", conf, "-p", l.dir}
		cc.Envs = []*runtimeapi.KeyValue{{Key: roleEnv, Value: nil}}
		cc.Mounts = []*runtimeapi.Mount{{ContainerPath: l.dir, HostPath: l.dir}}
	}
	created, err := c.rt.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: c.sandbox, Config: cc, SandboxConfig: sc})
	if err != nil {
		return fmt.Errorf("containerd CreateContainer: %v%s", err, c.logTail())
	}
	c.container = created.ContainerId
	if _, err := c.rt.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: c.container}); err != nil {
		return fmt.Errorf("containerd StartContainer: %v%s%s", err, c.appLogTail(), c.logTail())
	}
	return nil
}

// sandboxNetns reads the sandbox's network namespace from containerd's
// verbose sandbox info (the runtime spec's namespaces).
func sandboxNetns(info string) (string, error) {
	var v struct {
		RuntimeSpec struct {
			Linux struct {
				Namespaces []struct{ Type, Path string } `json:"namespaces"`
			} `json:"linux"`
		} `json:"runtimeSpec"`
	}
	if err := json.Unmarshal([]byte(info), &v); err != nil {
		return "", fmt.Errorf("containerd's sandbox info: %v", err)
	}
	for _, ns := range v.RuntimeSpec.Linux.Namespaces {
		if ns.Type == "network" && ns.Path != "" {
			return ns.Path, nil
		}
	}
	return "", errors.New("containerd's sandbox info names no network namespace")
}

// portForwardURL is the CRI PortForward RPC: where containerd's streaming
// server serves this sandbox's port-forward.
func (c *containerd) portForwardURL(ctx context.Context, sandbox string) (*url.URL, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	resp, err := c.rt.PortForward(ctx, &runtimeapi.PortForwardRequest{PodSandboxId: sandbox})
	if err != nil {
		return nil, fmt.Errorf("containerd PortForward: %v", err)
	}
	return url.Parse(resp.Url)
}

// appLog reads the built-in app's requests back from its container log
// (CRI format: time, stream, tag, then the line).
func (c *containerd) appLog() []AppRequest {
	f, err := os.Open(c.appLogPath)
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []AppRequest
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		f := strings.SplitN(sc.Text(), " ", 4)
		if len(f) != 4 || f[1] != "stdout" {
			continue
		}
		var r AppRequest
		if json.Unmarshal([]byte(f[3]), &r) == nil && r.Method != "" {
			out = append(out, r)
		}
	}
	return out
}

// removeSandbox stops and removes the pod's sandbox under a running
// port-forward, as when the pod is deleted.
func (c *containerd) removeSandbox() {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c.rt.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: c.sandbox})
	c.rt.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: c.sandbox})
}

// removeSandboxes stops and removes every sandbox of the lab's containerd:
// the pod's, and those a real kubelet made (pftap's agent).
func (c *containerd) removeSandboxes() {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ids := []string{c.sandbox}
	if list, err := c.rt.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{}); err == nil {
		for _, sb := range list.Items {
			if sb.Id != c.sandbox {
				ids = append(ids, sb.Id)
			}
		}
	}
	for _, id := range ids {
		if id == "" {
			continue
		}
		c.rt.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: id})
		c.rt.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: id})
	}
}

// close removes the pod through CRI (the network torn down by CNI), stops
// containerd, and removes what either could leave: shims, container
// processes, mounts, the sandbox's namespace, cgroups, CNI's cache.
func (c *containerd) close() error {
	if c.frozen && c.cmd != nil && c.cmd.Process != nil {
		c.cmd.Process.Signal(syscall.SIGCONT)
	}
	// The shims and what they run, seen now: the lab returns once every
	// one is gone (a shim exits a moment after its sandbox is removed,
	// and is reaped by init, not by us).
	started := append(labProcesses(filepath.Dir(c.dir)), cgroupPids(c.cgroupParent)...)
	defer waitGone(started, 5*time.Second)
	if c.rt != nil {
		select {
		case <-c.exited:
		default:
			c.removeSandboxes()
		}
	}
	if c.conn != nil {
		c.conn.Close()
	}
	if c.cmd != nil && c.cmd.Process != nil {
		select {
		case <-c.exited:
		default:
			c.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-c.exited:
			case <-time.After(5 * time.Second):
				syscall.Kill(-c.cmd.Process.Pid, syscall.SIGKILL)
				<-c.exited
			}
		}
	}
	cleanContainerd(filepath.Dir(c.dir), c.cgroupParent, c.network, c.netns)
	return nil
}

// labProcesses are the containerd processes (the daemon, its shims) that
// name the lab's directory dir in their command line.
func labProcesses(dir string) []int {
	var out []int
	if dir == "" || !strings.Contains(dir, Prefix) {
		return nil
	}
	procs, _ := filepath.Glob("/proc/[0-9]*")
	for _, p := range procs {
		pid, err := strconv.Atoi(strings.TrimPrefix(p, "/proc/"))
		if err != nil || pid == os.Getpid() {
			continue
		}
		if cmdlineHas(pid, dir+"/") && strings.HasPrefix(procComm(pid), " (containerd") {
			out = append(out, pid)
		}
	}
	return out
}

// waitGone waits, at most within, until none of pids exists any more
// (zombies included: they are gone once reaped).
func waitGone(pids []int, within time.Duration) {
	for deadline := time.Now().Add(within); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		left := false
		for _, pid := range pids {
			if _, err := os.Stat("/proc/" + strconv.Itoa(pid)); err == nil {
				left = true
				break
			}
		}
		if !left {
			return
		}
	}
}

// cleanContainerd removes what a lab's containerd left, whether it was
// stopped or killed: processes started for the lab dir (shims, a
// containerd) and in its cgroups, mounts under dir, the sandbox's
// namespace, the cgroups, CNI's cached results. It returns a line per
// thing removed.
func cleanContainerd(dir, cgroupParent, network, netns string) []string {
	var done []string
	if dir == "" || !strings.Contains(dir, Prefix) {
		return nil
	}
	// Shims (and a containerd) name the lab's directory in their command
	// line; containers are in the lab's cgroups. Nothing else is touched
	// (a kubectl given the lab's kubeconfig names the directory too).
	for _, pid := range labProcesses(dir) {
		syscall.Kill(pid, syscall.SIGKILL)
		done = append(done, fmt.Sprintf("killed process %d%s", pid, procComm(pid)))
	}
	if cgroupParent != "" {
		for _, pid := range cgroupPids(cgroupParent) {
			if syscall.Kill(pid, syscall.SIGKILL) == nil {
				done = append(done, fmt.Sprintf("killed process %d in cgroup %s", pid, cgroupParent))
			}
		}
	}
	// Mounts under the lab's directory (a sandbox's /dev/shm, rootfs
	// bind mounts), innermost first.
	for _, m := range mountsUnder(dir) {
		if syscall.Unmount(m, syscall.MNT_DETACH) == nil {
			done = append(done, "unmounted "+m)
		}
	}
	if netns != "" {
		if _, err := os.Stat(netns); err == nil {
			syscall.Unmount(netns, syscall.MNT_DETACH)
			if os.Remove(netns) == nil {
				done = append(done, "deleted network namespace "+filepath.Base(netns))
			}
		}
	}
	if cgroupParent != "" {
		// A killed process leaves its cgroup a moment later.
		for deadline := time.Now().Add(3 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			left := 0
			for _, d := range cgroupDirs(cgroupParent) {
				if os.Remove(d) != nil {
					left++
				}
			}
			if left == 0 || time.Now().After(deadline) {
				if left == 0 {
					done = append(done, "removed cgroups "+cgroupParent)
				}
				break
			}
		}
	}
	// The shims' socket directory is containerd's own, shared: removed
	// only when nothing is left in it.
	os.Remove("/run/containerd/s")
	os.Remove("/run/containerd")
	if network != "" {
		results, _ := filepath.Glob("/var/lib/cni/results/" + network + "-*")
		for _, r := range results {
			os.Remove(r)
		}
	}
	return done
}

// cleanSandboxNetns removes CNI's namespaces (/run/netns/cni-...) whose
// addresses are in a lab's subnet: a sandbox's that the lab's containerd
// made but was killed before it could record (or remove) it.
func cleanSandboxNetns(subnet string) []string {
	p, err := netip.ParsePrefix(subnet)
	if err != nil {
		return nil
	}
	var done []string
	names, _ := nsenter.List("cni-")
	for _, n := range names {
		ours := false
		nsenter.Do(n, func() error {
			addrs, _ := net.InterfaceAddrs()
			for _, a := range addrs {
				if ipn, ok := a.(*net.IPNet); ok {
					if ip, ok := netip.AddrFromSlice(ipn.IP); ok && p.Contains(ip.Unmap()) {
						ours = true
					}
				}
			}
			return nil
		})
		// A namespace something still lives in is a live lab's (one that
		// took the subnet since): the dead lab's processes are gone by now.
		if ours && len(pidsInNamespaces([]string{n})) == 0 && nsenter.Delete(n) == nil {
			done = append(done, "deleted network namespace "+n)
		}
	}
	return done
}

// cgroupDirs lists cgroupParent and what is below it in every hierarchy,
// deepest first.
func cgroupDirs(parent string) []string {
	var out []string
	roots, _ := filepath.Glob("/sys/fs/cgroup/*")
	roots = append(roots, "/sys/fs/cgroup")
	for _, r := range roots {
		top := filepath.Join(r, parent)
		if fi, err := os.Stat(top); err != nil || !fi.IsDir() {
			continue
		}
		var dirs []string
		filepath.WalkDir(top, func(p string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		for i := len(dirs) - 1; i >= 0; i-- {
			out = append(out, dirs[i])
		}
	}
	return out
}

// cgroupPids lists the processes in cgroupParent's cgroups.
func cgroupPids(parent string) []int {
	seen := map[int]bool{}
	var out []int
	for _, d := range cgroupDirs(parent) {
		b, err := os.ReadFile(filepath.Join(d, "cgroup.procs"))
		if err != nil {
			continue
		}
		for _, f := range strings.Fields(string(b)) {
			if pid, err := strconv.Atoi(f); err == nil && !seen[pid] && pid != os.Getpid() {
				seen[pid] = true
				out = append(out, pid)
			}
		}
	}
	return out
}

// mountsUnder lists the mount points below dir, innermost first.
func mountsUnder(dir string) []string {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && strings.HasPrefix(f[4], dir+"/") {
			out = append(out, f[4])
		}
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out
}

// logTail is containerd's last error lines, for a message.
func (c *containerd) logTail() string {
	return lastLines(c.logPath, "level=error", 2)
}

// appLogTail is the app container's last lines, for a message.
func (c *containerd) appLogTail() string {
	return lastLines(c.appLogPath, "", 2)
}

func lastLines(path, contains string, n int) string {
	b, _ := os.ReadFile(path)
	var keep []string
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if line != "" && strings.Contains(line, contains) {
			keep = append(keep, strings.TrimSpace(line))
		}
	}
	if len(keep) > n {
		keep = keep[len(keep)-n:]
	}
	if len(keep) == 0 {
		return ""
	}
	return " (" + filepath.Base(path) + ": " + strings.Join(keep, " | ") + ")"
}
