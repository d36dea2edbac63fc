// Target for the Go live-debugging tests, built by the tests with the Debian
// Go toolchain. Listens on 127.0.0.1:<port> (os.Args[1]). Each connection
// sends "N AMOUNT\n"; the program runs N calls of ValidateCard(AMOUNT), each
// on a fresh goroutine, at most 8 at a time, and answers "ok <sum>\n".
// ValidateCard sleeps AMOUNT*100 µs, then (AMOUNT > 25) recurses through
// 1 KiB frames, so the goroutine's stack grows (and moves) during the call:
// a uretprobe would crash the program here.
package main

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

//go:noinline
func grow(n int) int {
	var buf [1024]byte
	buf[n%1024] = byte(n)
	if n == 0 {
		return int(buf[0])
	}
	return grow(n-1) + int(buf[n%1024])
}

//go:noinline
func ValidateCard(amount int) int {
	time.Sleep(time.Duration(amount) * 100 * time.Microsecond)
	if amount > 25 {
		return grow(amount) - amount
	}
	return amount * 2
}

func serve(c net.Conn) {
	defer c.Close()
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return
	}
	var n, amount int
	if _, err := fmt.Sscanf(line, "%d %d", &n, &amount); err != nil {
		return
	}
	var sum int64
	var wg sync.WaitGroup
	slots := make(chan struct{}, 8)
	for i := 0; i < n; i++ {
		wg.Add(1)
		slots <- struct{}{}
		go func() {
			defer wg.Done()
			atomic.AddInt64(&sum, int64(ValidateCard(amount)))
			<-slots
		}()
	}
	wg.Wait()
	fmt.Fprintf(c, "ok %d\n", sum)
}

func main() {
	l, err := net.Listen("tcp", "127.0.0.1:"+os.Args[1])
	if err != nil {
		os.Exit(1)
	}
	for {
		c, err := l.Accept()
		if err != nil {
			continue
		}
		go serve(c)
	}
}
