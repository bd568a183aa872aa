package node

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/engramdb/engram/internal/cluster"
	"github.com/engramdb/engram/internal/config"
	"github.com/engramdb/engram/internal/transport"
)

const testSecret = "node-test-secret-0123456789"

// startMember starts a cluster member on loopback with random ports,
// joining join (none: a new cluster).
func startMember(t *testing.T, join string, mod func(*config.Config)) *Node {
	t.Helper()
	return startNode(t, func(c *config.Config) {
		c.HTTPAddr = ""
		c.ClusterAddr = "127.0.0.1:0"
		c.ClusterSecret = testSecret
		c.Partitions = 31
		if join != "" {
			c.Join = []string{join}
		}
		if mod != nil {
			mod(c)
		}
	})
}

// waitSettled waits until every node has the same epoch, want data
// members alive and no copy in flight.
func waitSettled(t *testing.T, want int, nodes ...*Node) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ok := true
		var epoch uint64
		var why string
		for i, n := range nodes {
			v, _ := n.ClusterView(false)
			alive := 0
			for _, m := range v.Members {
				if m.Alive && m.Role == "data" {
					alive++
				}
			}
			switch {
			case v.State != "ok":
				ok, why = false, fmt.Sprintf("node %d: %s %s", i, v.State, v.Reason)
			case alive != want:
				ok, why = false, fmt.Sprintf("node %d sees %d data members", i, alive)
			case v.Migrations != 0:
				ok, why = false, fmt.Sprintf("node %d: %d migrations", i, v.Migrations)
			case i > 0 && v.Epoch != epoch:
				ok, why = false, fmt.Sprintf("epochs %d and %d", epoch, v.Epoch)
			}
			epoch = v.Epoch
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("cluster did not settle: %s", why)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func do(t *testing.T, n *Node, args ...string) string {
	t.Helper()
	a := make([][]byte, len(args))
	for i, s := range args {
		a[i] = []byte(s)
	}
	return string(n.Do(context.Background(), "0", a, false, cluster.AckAll, false))
}

func TestClusterFormsAndRebalances(t *testing.T) {
	a := startMember(t, "", nil)
	b := startMember(t, a.GossipAddr(), nil)
	waitSettled(t, 2, a, b)
	for i := range 300 {
		if got := do(t, b, "SET", fmt.Sprintf("k%d", i), fmt.Sprint(i)); got != "+OK\r\n" {
			t.Fatalf("SET k%d: %q", i, got)
		}
	}
	c := startMember(t, b.GossipAddr(), nil)
	waitSettled(t, 3, a, b, c)
	for _, n := range []*Node{a, b, c} {
		if got := do(t, n, "DBSIZE"); got != ":300\r\n" {
			t.Fatalf("DBSIZE on %s after the join: %q", n.ID(), got)
		}
		// The newcomer holds its share: 2 copies of 300 keys over 3 nodes.
		if l := n.Store().Map("0").Len(); l < 100 || l > 300 {
			t.Fatalf("%s holds %d keys", n.ID(), l)
		}
	}
	v, _ := c.ClusterView(false)
	for _, m := range v.Members {
		if m.Primaries == 0 {
			t.Fatalf("member %s leads no partition after settling: %+v", m.ID, v.Members)
		}
	}
}

// Map settings are cluster configuration: set through one node, they
// hold on every node, including one that joins later.
func TestClusterMapSettings(t *testing.T) {
	a := startMember(t, "", nil)
	b := startMember(t, a.GossipAddr(), nil)
	waitSettled(t, 2, a, b)
	if got := do(t, b, "SETMAXTTL", "60", "users"); got != "+OK\r\n" {
		t.Fatalf("SETMAXTTL: %q", got)
	}
	if got := do(t, a, "SETMAXKEYS", "500", "users"); got != "+OK\r\n" {
		t.Fatalf("SETMAXKEYS: %q", got)
	}
	c := startMember(t, a.GossipAddr(), nil)
	waitSettled(t, 3, a, b, c)
	for _, n := range []*Node{a, b, c} {
		m := n.Store().Map("users")
		if m.MaxTTL() != 60 || m.MaxKeys() != 500 {
			t.Fatalf("%s: max ttl %d, max keys %d; want 60 and 500", n.ID(), m.MaxTTL(), m.MaxKeys())
		}
	}
}

// A node killed without leaving is detected; its partitions are led by
// the survivors and no key is lost (two copies).
func TestClusterSurvivesKill(t *testing.T) {
	a := startMember(t, "", nil)
	b := startMember(t, a.GossipAddr(), nil)
	c := startMember(t, a.GossipAddr(), nil)
	waitSettled(t, 3, a, b, c)
	for i := range 200 {
		if got := do(t, a, "SET", fmt.Sprintf("k%d", i), fmt.Sprint(i)); got != "+OK\r\n" {
			t.Fatalf("SET: %q", got)
		}
	}
	c.Kill(context.Background())
	waitSettled(t, 2, a, b)
	for i := range 200 {
		if got := do(t, b, "GET", fmt.Sprintf("k%d", i)); got != fmt.Sprintf("$%d\r\n%d\r\n", len(fmt.Sprint(i)), i) {
			t.Fatalf("GET k%d after the kill: %q", i, got)
		}
	}
	active, configured := a.Nodes()
	if len(active) != 2 || len(configured) != 3 {
		t.Fatalf("after a failure: active %v, configured %v", active, configured)
	}
	if info := do(t, a, "CLUSTER", "INFO"); !strings.Contains(info, "cluster_state:ok") {
		t.Fatalf("CLUSTER INFO: %s", info)
	}
}

func TestOffsetAddr(t *testing.T) {
	for _, tc := range []struct {
		in   string
		d    int
		want string
		bad  bool
	}{
		{"127.0.0.1:7946", 1, "127.0.0.1:7947", false},
		{"[::1]:7946", 2, "[::1]:7948", false},
		{"127.0.0.1:0", 2, "127.0.0.1:0", false},
		{"h:65535", 1, "", true},
		{"nope", 1, "", true},
	} {
		got, err := offsetAddr(tc.in, tc.d)
		if (err != nil) != tc.bad || got != tc.want {
			t.Errorf("offsetAddr(%q, %d) = %q, %v", tc.in, tc.d, got, err)
		}
	}
}

// --manager=false keeps a data node out of the control plane's voters.
func TestClusterManagerFlag(t *testing.T) {
	a := startMember(t, "", nil)
	b := startMember(t, a.GossipAddr(), func(c *config.Config) { c.Manager = false })
	c := startMember(t, a.GossipAddr(), nil)
	waitSettled(t, 3, a, b, c)
	v, _ := a.ClusterView(false)
	for _, m := range v.Members {
		if want := m.ID != b.ID(); m.Manager != want {
			t.Errorf("member %s: manager %v, want %v", m.ID, m.Manager, want)
		}
	}
}

// The control plane's Raft port refuses a peer without the cluster secret.
func TestClusterRaftNeedsSecret(t *testing.T) {
	a := startMember(t, "", nil)
	raftAddr := a.cluster.ctl.Addr()
	nc, err := net.Dial("tcp", raftAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if _, err := transport.Authenticate(nc, []byte("not-the-cluster-secret-0123"), "127.0.0.1:1", true, 5*time.Second); err == nil {
		t.Fatal("the Raft port accepted a peer with the wrong secret")
	}
	nc2, err := net.Dial("tcp", raftAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc2.Close()
	if _, err := transport.Authenticate(nc2, []byte(testSecret), "127.0.0.1:1", true, 5*time.Second); err != nil {
		t.Fatalf("the Raft port refused the right secret: %v", err)
	}
}

// writeTLSFiles writes a CA and a certificate it signs for 127.0.0.1
// (PEM) into dir and returns their paths.
func writeTLSFiles(t *testing.T, dir string) (cert, key, ca string) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "engram test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true,
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	nodeKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	nodeTmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "node"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}}
	nodeDER, err := x509.CreateCertificate(rand.Reader, nodeTmpl, caCert, &nodeKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalECPrivateKey(nodeKey)
	write := func(name, typ string, der []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	return write("node.pem", "CERTIFICATE", nodeDER), write("node.key", "EC PRIVATE KEY", keyDER), write("ca.pem", "CERTIFICATE", caDER)
}

// Node-to-node data connections in mutual TLS: the cluster forms,
// copies partitions and serves keys across nodes.
func TestClusterTLS(t *testing.T) {
	cert, key, ca := writeTLSFiles(t, t.TempDir())
	tlsOn := func(c *config.Config) { c.ClusterTLSCert, c.ClusterTLSKey, c.ClusterTLSCA = cert, key, ca }
	a := startMember(t, "", tlsOn)
	waitSettled(t, 1, a)
	for i := range 50 {
		if got := do(t, a, "SET", fmt.Sprintf("k%d", i), "v"); got != "+OK\r\n" {
			t.Fatalf("SET: %q", got)
		}
	}
	b := startMember(t, a.GossipAddr(), tlsOn)
	waitSettled(t, 2, a, b)
	if got := do(t, b, "DBSIZE"); got != ":50\r\n" {
		t.Fatalf("DBSIZE through the second node: %q", got)
	}
	if l := b.Store().Map("0").Len(); l != 50 {
		t.Fatalf("the second node holds %d copies, want 50 (2 copies on 2 nodes)", l)
	}
	// The data port speaks TLS only: the secret alone, in clear, is refused.
	nc, err := net.Dial("tcp", a.cluster.tr.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if _, err := transport.Authenticate(nc, []byte(testSecret), "127.0.0.1:1", true, 3*time.Second); err == nil {
		t.Fatal("the data port accepted a peer without TLS")
	}
}
