package node

import (
	"net/http"
)

// httpHandler builds the HTTP API.
func (n *Node) httpHandler() (http.Handler, error) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("ok\n")) })
	return mux, nil
}
