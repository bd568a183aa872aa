package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// docker runs the docker CLI and returns its trimmed output.
func docker(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("docker", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("docker %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// TestClusterDocker runs a 3-node cluster as containers on a private
// Docker network: an image built FROM scratch with a static binary (no
// image is pulled), nodes on their own IPs with a password (non-loopback
// addresses need one), keys through every node, then one container killed
// (SIGKILL): the survivors take over and no key is lost.
func TestClusterDocker(t *testing.T) {
	if _, err := exec.LookPath("docker"); err != nil {
		t.Skip("docker CLI not installed")
	}
	if out, err := exec.Command("docker", "info", "--format", "{{.ServerVersion}}").CombinedOutput(); err != nil {
		t.Skipf("no Docker engine reachable: %v %s", err, out)
	}
	dir := t.TempDir()
	build := exec.Command("go", "build", "-o", filepath.Join(dir, "engram"), "github.com/engramdb/engram/cmd/engram")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("static build: %v\n%s", err, out)
	}
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte("FROM scratch\nCOPY engram /engram\nENTRYPOINT [\"/engram\"]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tag := fmt.Sprintf("engram-e2e:%d", os.Getpid())
	docker(t, "build", "-q", "-t", tag, dir)
	t.Cleanup(func() { exec.Command("docker", "rmi", "-f", tag).Run() })
	// A private network with a subnet of our own, so nodes get known IPs.
	net := fmt.Sprintf("engram-e2e-%d", os.Getpid())
	subnet := fmt.Sprintf("172.31.%d", 1+os.Getpid()%250)
	docker(t, "network", "create", "--subnet", subnet+".0/24", net)
	t.Cleanup(func() { exec.Command("docker", "network", "rm", net).Run() })
	const password = "docker-e2e-password"
	var names, ips []string
	for i := range 3 {
		ip := fmt.Sprintf("%s.%d", subnet, i+2)
		name := fmt.Sprintf("%s-n%d", net, i+1)
		args := []string{"run", "-d", "--name", name, "--network", net, "--ip", ip,
			"-e", "ENGRAM_CLUSTER_SECRET=" + clusterSecret, "-e", "ENGRAM_PASSWORD=" + password,
			tag, "serve", "--resp", ip + ":7379", "--http", "off", "--cluster", ip + ":7946", "--partitions", "31"}
		if i > 0 {
			args = append(args, "--join", ips[0]+":7946")
		}
		docker(t, args...)
		t.Cleanup(func() {
			if t.Failed() {
				out, _ := exec.Command("docker", "logs", name).CombinedOutput()
				t.Logf("logs of %s:\n%s", name, out)
			}
			exec.Command("docker", "rm", "-f", name).Run()
		})
		names, ips = append(names, name), append(ips, ip)
	}
	clients := make([]*redis.Client, len(ips))
	for i, ip := range ips {
		clients[i] = redis.NewClient(&redis.Options{Addr: ip + ":7379", Password: password, MaxRetries: -1,
			DialTimeout: 5 * time.Second, ReadTimeout: opTimeout, WriteTimeout: opTimeout})
		t.Cleanup(func() { clients[i].Close() })
	}
	settled := func(live []*redis.Client, want int) bool {
		epoch := ""
		for _, c := range live {
			ctx, cancel := ctxTimeout(5 * time.Second)
			info, err := c.Do(ctx, "CLUSTER", "INFO").Text()
			cancel()
			if err != nil || !strings.Contains(info, "cluster_state:ok") || !strings.Contains(info, "cluster_migrations:0\r\n") ||
				!strings.Contains(info, fmt.Sprintf("cluster_data_nodes:%d\r\n", want)) {
				return false
			}
			e := info[strings.Index(info, "cluster_epoch:"):]
			e = e[:strings.Index(e, "\r\n")]
			if epoch != "" && e != epoch {
				return false
			}
			epoch = e
		}
		return true
	}
	waitFor(t, settleTimeout, "the containers to form a cluster", func() bool { return settled(clients, 3) })
	ctx := context.Background()
	const keys = 500
	for i := range keys {
		if err := clients[i%3].Set(ctx, fmt.Sprintf("k%d", i), fmt.Sprint(i), 0).Err(); err != nil {
			t.Fatalf("SET k%d: %v", i, err)
		}
	}
	docker(t, "kill", "--signal", "KILL", names[2])
	killed := time.Now()
	waitFor(t, settleTimeout, "the survivors to take over", func() bool { return settled(clients[:2], 2) })
	t.Logf("survivors settled %v after the container was killed", time.Since(killed).Round(10*time.Millisecond))
	for _, c := range clients[:2] {
		if n, err := c.DBSize(ctx).Result(); err != nil || n != keys {
			t.Fatalf("DBSIZE after the kill: %d, %v; want %d", n, err, keys)
		}
		for i := range keys {
			if v, err := c.Get(ctx, fmt.Sprintf("k%d", i)).Result(); err != nil || v != fmt.Sprint(i) {
				t.Fatalf("GET k%d after the kill: %q, %v", i, v, err)
			}
		}
	}
}
