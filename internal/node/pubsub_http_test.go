package node

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/engramdb/engram/internal/cluster"
)

// sseEvent is one server-sent event.
type sseEvent struct {
	typ  string
	data map[string]any
}

// readSSE reads events from r into ch until EOF.
func readSSE(r io.Reader, ch chan<- sseEvent) {
	defer close(ch)
	sc := bufio.NewScanner(r)
	var ev sseEvent
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if ev.typ != "" || ev.data != nil {
				ch <- ev
			}
			ev = sseEvent{}
		case line == ": subscribed":
			ch <- sseEvent{typ: "subscribed"}
		case strings.HasPrefix(line, "event: "):
			ev.typ = line[len("event: "):]
		case strings.HasPrefix(line, "data: "):
			json.Unmarshal([]byte(line[len("data: "):]), &ev.data)
		}
	}
}

func nextSSE(t *testing.T, ch <-chan sseEvent) sseEvent {
	t.Helper()
	select {
	case ev, ok := <-ch:
		if !ok {
			t.Fatal("event stream ended")
		}
		return ev
	case <-time.After(30 * time.Second):
		t.Fatal("no event within 30s")
	}
	return sseEvent{}
}

// TestHTTPEvents: GET /v1/events streams map events (with values and
// reasons) and topic messages; POST /v1/topics publishes; a stream still
// open does not hold the node's shutdown.
func TestHTTPEvents(t *testing.T) {
	n := startNode(t, nil)
	base := "http://" + n.HTTPAddr()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	for _, bad := range []string{"/v1/events", "/v1/events?map=m&kind=both", "/v1/events?key=k"} {
		resp, err := http.Get(base + bad)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("GET %s: %d, want 400", bad, resp.StatusCode)
		}
	}

	req, _ := http.NewRequestWithContext(ctx, "GET", base+"/v1/events?map=users&channel=news&pattern=chat.*", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode != 200 || ct != "text/event-stream" {
		t.Fatalf("status %d, content type %q", resp.StatusCode, ct)
	}
	ch := make(chan sseEvent, 100)
	go readSSE(resp.Body, ch)
	if ev := nextSSE(t, ch); ev.typ != "subscribed" {
		t.Fatalf("first event %+v", ev)
	}

	run := func(args ...string) string {
		a := make([][]byte, len(args))
		for i, s := range args {
			a[i] = []byte(s)
		}
		return string(n.Do(ctx, "users", a, false, cluster.AckAll, false))
	}
	run("SET", "k1", "hello")
	run("SET", "bin", "\xff\x00")
	run("DEL", "k1")
	pub, err := http.Post(base+"/v1/topics/news", "application/octet-stream", strings.NewReader("extra!"))
	if err != nil {
		t.Fatal(err)
	}
	var pr map[string]int
	json.NewDecoder(pub.Body).Decode(&pr)
	pub.Body.Close()
	if pr["receivers"] != 1 {
		t.Fatalf("publish answered %v, want 1 receiver", pr)
	}
	pub, _ = http.Post(base+"/v1/topics/__engram__:nodes", "text/plain", strings.NewReader("forged"))
	pub.Body.Close()
	if pub.StatusCode != http.StatusBadRequest {
		t.Fatalf("publishing on an event channel: %d, want 400", pub.StatusCode)
	}
	http.Post(base+"/v1/topics/chat.room", "text/plain", strings.NewReader("c"))

	want := []struct{ typ, field, value string }{
		{"write", "value", "hello"},
		{"write", "value", "/wA="}, // not UTF-8: base64
		{"delete", "reason", "delete"},
		{"topic", "value", "extra!"},
		{"topic", "pattern", "chat.*"},
	}
	for i, w := range want {
		ev := nextSSE(t, ch)
		if ev.typ != w.typ || ev.data["type"] != w.typ || ev.data[w.field] != w.value {
			t.Fatalf("event %d: %s %v, want %s with %s=%q", i, ev.typ, ev.data, w.typ, w.field, w.value)
		}
	}
	// The stream stays open: the node's Close (test cleanup) must end it.
}
