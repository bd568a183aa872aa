package httpapi

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"time"
	"unicode/utf8"

	"github.com/engramdb/engram/internal/pubsub"
)

// Pub/sub over HTTP (docs/pubsub.md, docs/http.md):
//
//	GET  /v1/events?channel=C&pattern=P&map=M&key=K&kind=write|delete|any&nodes=true
//	     a server-sent events stream of the topics, map events and node
//	     events named (each parameter may repeat, at least one is needed)
//	POST /v1/topics/{topic}   body: the message -> {"receivers": n}
//
// Each SSE event is "event: <type>" (topic, write, delete, node) and one
// line of JSON data. A subscriber that reads too slowly is disconnected as
// on the Redis protocol: a last "event: error" says why.

// keepAlive is how often an idle stream sends a comment line, so proxies
// and clients see the connection alive.
const keepAlive = 15 * time.Second

// eventJSON is the data line of one SSE event.
type eventJSON struct {
	Type       string   `json:"type"`
	Channel    string   `json:"channel"`
	Pattern    string   `json:"pattern,omitempty"`
	Map        string   `json:"map,omitempty"`
	Key        string   `json:"key,omitempty"`
	Value      *string  `json:"value,omitempty"`
	Reason     string   `json:"reason,omitempty"`
	Encoding   string   `json:"encoding,omitempty"`
	Event      string   `json:"event,omitempty"`
	Node       string   `json:"node,omitempty"`
	Left       bool     `json:"left,omitempty"`
	Active     []string `json:"active,omitempty"`
	Configured []string `json:"configured,omitempty"`
}

func (a *api) eventRoutes() {
	if a.hub == nil {
		return
	}
	a.handle("GET /v1/events", a.events)
	a.handle("POST /v1/topics/{topic}", a.publish)
}

// publish: POST /v1/topics/{topic}.
func (a *api) publish(w http.ResponseWriter, r *http.Request) error {
	if _, err := query(r); err != nil {
		return err
	}
	body, err := readBody(w, r, a.maxBody)
	if err != nil {
		return err
	}
	n, err := a.hub.Publish(r.Context(), r.PathValue("topic"), body)
	if errors.Is(err, pubsub.ErrReserved) {
		return badRequest("%v", err)
	}
	if err != nil && n == 0 {
		return &apiError{status: http.StatusServiceUnavailable, code: "try_again", msg: err.Error()}
	}
	return writeJSON(w, map[string]int{"receivers": n})
}

// events: GET /v1/events, a server-sent events stream.
func (a *api) events(w http.ResponseWriter, r *http.Request) error {
	q, err := query(r, "channel", "pattern", "map", "key", "kind", "nodes", "encoding")
	if err != nil {
		return err
	}
	channels, patterns := q["channel"], q["pattern"]
	for _, ch := range channels {
		if ch == "" {
			return badRequest("channel must not be empty")
		}
	}
	if len(q["map"]) > 1 || len(q["key"]) > 1 || len(q["kind"]) > 1 {
		return badRequest("map, key and kind may be given once")
	}
	if m := q.Get("map"); m != "" {
		kinds := []pubsub.Kind{pubsub.Write, pubsub.Delete}
		switch q.Get("kind") {
		case "", "any":
		case "write":
			kinds = kinds[:1]
		case "delete":
			kinds = kinds[1:]
		default:
			return badRequest("kind must be write, delete or any, got %q", q.Get("kind"))
		}
		for _, k := range kinds {
			if q.Has("key") {
				channels = append(channels, pubsub.MapChannel(m, k, q.Get("key")))
			} else {
				patterns = append(patterns, pubsub.MapPattern(m, k))
			}
		}
	} else if q.Has("key") || q.Has("kind") {
		return badRequest("key and kind need map")
	}
	nodes, err := boolParam(q, "nodes")
	if err != nil {
		return err
	}
	if nodes {
		channels = append(channels, pubsub.NodeChannel)
	}
	if len(channels) == 0 && len(patterns) == 0 {
		return badRequest("name what to receive: channel, pattern, map (with key and kind) or nodes=true")
	}
	b64 := false
	switch q.Get("encoding") {
	case "", "auto":
	case "base64":
		b64 = true
	default:
		return badRequest("encoding must be auto or base64, got %q", q.Get("encoding"))
	}

	ctx := r.Context()
	sub := a.hub.NewSubscriber(nil)
	defer sub.Close()
	if len(channels) > 0 {
		sub.Subscribe(ctx, channels...)
	}
	if len(patterns) > 0 {
		sub.PSubscribe(ctx, patterns...)
	}
	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	bw := bufio.NewWriterSize(w, 32<<10)
	// The subscriptions are in place: a comment tells the client so.
	bw.WriteString(": subscribed\n\n")
	if bw.Flush() != nil || rc.Flush() != nil {
		return nil
	}
	return a.streamEvents(ctx, sub, bw, rc, b64)
}

func (a *api) streamEvents(ctx context.Context, sub *pubsub.Subscriber, bw *bufio.Writer, rc *http.ResponseController, b64 bool) error {
	tick := time.NewTicker(keepAlive)
	defer tick.Stop()
	var msgs []pubsub.Message
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-sub.Done():
			if errors.Is(sub.Err(), pubsub.ErrOverflow) {
				d, _ := json.Marshal(map[string]string{"error": "overflow", "message": sub.Err().Error()})
				bw.WriteString("event: error\ndata: ")
				bw.Write(d)
				bw.WriteString("\n\n")
				bw.Flush()
				rc.Flush()
				a.log.Warn("closing a slow event stream (output buffer limit reached)")
			}
			return nil
		case <-tick.C:
			bw.WriteString(": keepalive\n\n")
		case <-sub.Ready():
			msgs = sub.Take(msgs[:0])
			for i := range msgs {
				writeSSE(bw, pubsub.Decode(msgs[i]), b64)
			}
			clear(msgs)
		}
		if bw.Flush() != nil || rc.Flush() != nil {
			return nil // the client went away
		}
	}
}

// writeSSE writes one event.
func writeSSE(bw *bufio.Writer, e pubsub.Event, b64 bool) {
	j := eventJSON{Type: e.Type, Channel: e.Channel, Pattern: e.Pattern, Map: e.Map, Key: e.Key, Reason: e.Reason}
	enc := encUTF8
	if b64 || !utf8.ValidString(e.Channel) || !utf8.ValidString(e.Pattern) || !utf8.Valid(e.Value) {
		enc = encBase64
	}
	if e.Type != pubsub.TypeNode {
		// Names and values travel as text when they are, base64 else.
		j.Encoding = enc.String()
		j.Channel, j.Pattern, j.Map, j.Key = enc.str([]byte(j.Channel)), enc.str([]byte(j.Pattern)), enc.str([]byte(j.Map)), enc.str([]byte(j.Key))
		if e.Type != pubsub.TypeDelete {
			v := enc.str(e.Value)
			j.Value = &v
		}
	} else if e.Node != nil {
		j.Event, j.Node, j.Left, j.Active, j.Configured = e.Node.Event, e.Node.Node, e.Node.Left, e.Node.Active, e.Node.Configured
	}
	d, _ := json.Marshal(j)
	bw.WriteString("event: ")
	bw.WriteString(e.Type)
	bw.WriteString("\ndata: ")
	bw.Write(d)
	bw.WriteString("\n\n")
}
