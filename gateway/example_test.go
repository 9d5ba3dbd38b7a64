package gateway_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/qrngd/qrngd/entropy"
	"github.com/qrngd/qrngd/gateway"
)

// A gateway over an engine with no healthy source: under the default
// fail-closed policy it is live but not ready, and random requests get 503.
func ExampleNew() {
	eng, err := entropy.New(nil)
	if err != nil {
		panic(err)
	}
	defer eng.Close()
	g, err := gateway.New(&gateway.Options{Entropy: eng, Version: "example"})
	if err != nil {
		panic(err)
	}
	srv := httptest.NewServer(g)
	defer srv.Close()

	for _, path := range []string{"/healthz", "/readyz", "/v1/random?bytes=32"} {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			panic(err)
		}
		var body struct {
			Error struct{ Code string } `json:"error"`
		}
		_ = json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		fmt.Println(strings.TrimSpace(fmt.Sprintln(path, resp.StatusCode, body.Error.Code, resp.Header.Get("Retry-After"))))
	}
	// Output:
	// /healthz 200
	// /readyz 503 not_ready 1
	// /v1/random?bytes=32 503 insufficient_entropy 1
}
