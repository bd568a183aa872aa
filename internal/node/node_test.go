package node

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/engramdb/engram/internal/config"
)

func startNode(t *testing.T, mod func(*config.Config)) *Node {
	t.Helper()
	cfg := config.Default()
	cfg.RESPAddr, cfg.HTTPAddr = "127.0.0.1:0", "127.0.0.1:0"
	if mod != nil {
		mod(&cfg)
	}
	n, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close(context.Background()) })
	return n
}

func roundTrip(t *testing.T, addr, cmd string) string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, cmd); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(line)
}

func httpGet(t *testing.T, url, password string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	if password != "" {
		req.Header.Set("Authorization", "Bearer "+password)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestNodeServesRESPAndHTTP(t *testing.T) {
	n := startNode(t, nil)
	if got := roundTrip(t, n.RESPAddr(), "SET k v\r\n"); got != "+OK" {
		t.Fatalf("SET: %q", got)
	}
	if code, body := httpGet(t, "http://"+n.HTTPAddr()+"/v1/maps/0/keys/k", ""); code != 200 || body != "v" {
		t.Fatalf("HTTP GET: %d %q", code, body)
	}
	if code, body := httpGet(t, "http://"+n.HTTPAddr()+"/metrics", ""); code != 200 || !strings.Contains(body, `engram_commands_total{command="set"} 1`) || !strings.Contains(body, `engram_keys{map="0"} 1`) {
		t.Fatalf("metrics: %d\n%s", code, body)
	}
	if code, _ := httpGet(t, "http://"+n.HTTPAddr()+"/healthz", ""); code != 200 {
		t.Fatalf("healthz: %d", code)
	}
}

func TestNodePasswordProtectsBothInterfaces(t *testing.T) {
	n := startNode(t, func(c *config.Config) { c.Password = "s3cret-pass" })
	if got := roundTrip(t, n.RESPAddr(), "GET k\r\n"); !strings.HasPrefix(got, "-NOAUTH") {
		t.Fatalf("RESP without AUTH: %q", got)
	}
	if code, _ := httpGet(t, "http://"+n.HTTPAddr()+"/v1/stats", ""); code != http.StatusUnauthorized {
		t.Fatalf("HTTP without password: %d", code)
	}
	if code, _ := httpGet(t, "http://"+n.HTTPAddr()+"/v1/stats", "s3cret-pass"); code != 200 {
		t.Fatalf("HTTP with password: %d", code)
	}
}

func TestNodeRefusesPublicAddressWithoutPassword(t *testing.T) {
	cfg := config.Default()
	cfg.RESPAddr = "0.0.0.0:0"
	if _, err := New(cfg, nil); err == nil || !strings.Contains(err.Error(), "refusing to listen") {
		t.Fatalf("want protected-mode refusal, got %v", err)
	}
}
