// A CPU-bound Go target for the profiler tests (built stripped with
// -ldflags="-s -w", so names come from .gopclntab): three quarters of its
// CPU time in main.hotLoop, one quarter in main.warmLoop, each the same loop
// run until its share of a round of the thread's CPU time has passed. A
// round lasts 0.618… of a period of the profiler's 99 Hz clock, so
// successive samples fall at evenly spread phases of it (see ../burn.c).
package main

import (
	"runtime"
	"syscall"
	"unsafe"
)

const chunk = 600000

var sink uint64

// cpuMs is this thread's CPU time in milliseconds (CLOCK_THREAD_CPUTIME_ID).
func cpuMs() float64 {
	var ts syscall.Timespec
	syscall.RawSyscall(syscall.SYS_CLOCK_GETTIME, 3, uintptr(unsafe.Pointer(&ts)), 0)
	return float64(ts.Sec)*1e3 + float64(ts.Nsec)/1e6
}

// hotLoop spins until the thread has used `until` ms of CPU time.
//
//go:noinline
func hotLoop(until float64) {
	for cpuMs() < until {
		for i := uint64(0); i < chunk; i++ {
			sink += i
		}
	}
}

//go:noinline
func warmLoop(until float64) {
	for cpuMs() < until {
		for i := uint64(0); i < chunk; i++ {
			sink += i
		}
	}
}

func main() {
	// One thread: its CPU clock is the loop's.
	runtime.LockOSThread()
	// Rounds on a fixed grid of CPU time: neither loop gains from overshooting its end.
	round := 1000.0 / 99 * 0.6180339887
	for t := cpuMs(); ; t += round {
		hotLoop(t + 0.75*round)
		warmLoop(t + round)
	}
}
