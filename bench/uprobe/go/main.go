// bench/uprobe Go target: for every line "N" on stdin, calls Cheap N times in
// a tight loop and prints the mean nanoseconds per call.
package main

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

//go:noinline
func Cheap(i int) int { return i*2 + 1 }

func main() {
	in := bufio.NewScanner(os.Stdin)
	sink := 0
	for in.Scan() {
		n, _ := strconv.Atoi(strings.TrimSpace(in.Text()))
		t0 := time.Now()
		for i := 0; i < n; i++ {
			sink += Cheap(i)
		}
		el := time.Since(t0)
		if n == 0 {
			n = 1
		}
		fmt.Printf("%.1f\n", float64(el.Nanoseconds())/float64(n))
	}
	os.Exit(sink & 0)
}
