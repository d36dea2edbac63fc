// Target for the stripped-Go live-debugging tests: an HTTP server that the
// tests build twice, with and without -ldflags='-s -w'. Listens on
// 127.0.0.1:<port> (os.Args[1]); GET /quote?n=N answers "quote <Quote(N)>".
// Quote takes an integer and returns one, so the register ABI carries both.
package main

import (
	"fmt"
	"net/http"
	"os"
	"strconv"
	"time"
)

//go:noinline
func Quote(n int) int {
	// Long enough that a call is clearly timed, short enough for many requests.
	time.Sleep(200 * time.Microsecond)
	return n*7 + 1
}

func quoteHandler(w http.ResponseWriter, r *http.Request) {
	n, err := strconv.Atoi(r.URL.Query().Get("n"))
	if err != nil {
		http.Error(w, "n: not an integer", http.StatusBadRequest)
		return
	}
	fmt.Fprintf(w, "quote %d\n", Quote(n))
}

func main() {
	mux := http.NewServeMux()
	mux.HandleFunc("/quote", quoteHandler)
	if err := http.ListenAndServe("127.0.0.1:"+os.Args[1], mux); err != nil {
		os.Exit(1)
	}
}
