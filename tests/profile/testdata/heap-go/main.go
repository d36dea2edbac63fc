// A Go service for heap profiles: it serves net/http/pprof on the port given
// as its first argument, keeps ~20 MB live from main.retainBig and keeps
// allocating short-lived garbage in main.churn.
package main

import (
	"fmt"
	"net/http"
	_ "net/http/pprof"
	"os"
	"runtime"
	"time"
)

// Reachable for the life of the process, so the heap profile sees it in use.
var retained [][]byte

//go:noinline
func retainBig() {
	for i := 0; i < 20; i++ {
		block := make([]byte, 1<<20)
		for j := range block {
			block[j] = byte(i + j) // touched: resident, not just reserved
		}
		retained = append(retained, block)
	}
}

var sink []byte

//go:noinline
func churn() {
	for {
		for i := 0; i < 64; i++ {
			sink = make([]byte, 16<<10)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: heap-go <port>")
		os.Exit(2)
	}
	// Sample (nearly) every allocation, so the profile's numbers are the real ones.
	runtime.MemProfileRate = 4096
	retainBig()
	go churn()
	http.HandleFunc("/health", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	if err := http.ListenAndServe("127.0.0.1:"+os.Args[1], nil); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
