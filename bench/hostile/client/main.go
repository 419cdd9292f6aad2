// Command client is bench/hostile/run.sh's attacker and witness: it holds
// -trickle connections that send a request header a byte per
// -trickle-every and -idle connections that send nothing (each reopened
// when the server closes it, 100ms later, or 1s later when it was closed
// at once (refused) or the dial failed), from -from; and
// meanwhile sends normal requests from -normal-from at -rate, measuring
// their latency. It samples the server's RSS (/proc/PID/status) and
// prints one summary.
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:18090", "server address")
	trickle := flag.Int("trickle", 2000, "connections trickling their header")
	idle := flag.Int("idle", 2000, "connections sending nothing")
	every := flag.Duration("trickle-every", time.Second, "a trickling connection sends one byte this often")
	from := flag.String("from", "127.0.0.1", "local address of the hostile connections")
	normalFrom := flag.String("normal-from", "127.0.0.2", "local address of the normal client")
	rate := flag.Int("rate", 100, "normal requests per second")
	duration := flag.Duration("duration", 30*time.Second, "how long")
	pid := flag.Int("pid", 0, "server process to sample RSS of")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, *duration)
	defer cancel()

	var opened, dialFailed, refused, cut, open atomic.Int64
	var wg sync.WaitGroup
	hold := func(trickling bool) {
		defer wg.Done()
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(*from)}, Timeout: 5 * time.Second}
		for ctx.Err() == nil {
			c, err := d.DialContext(ctx, "tcp", *addr)
			if err != nil {
				dialFailed.Add(1)
				sleep(ctx, time.Second)
				continue
			}
			opened.Add(1)
			open.Add(1)
			backoff := 100 * time.Millisecond
			start := time.Now()
			closed := make(chan struct{})
			go func() { // a read returns when the server closes (or resets)
				io.Copy(io.Discard, c)
				close(closed)
			}()
			header := []byte("GET / HTTP/1.1\r\nHost: a\r\nX-Slow: " + strings.Repeat("x", 1000))
			t := time.NewTicker(*every)
		loop:
			for i := 0; ; i++ {
				select {
				case <-ctx.Done():
					break loop
				case <-closed:
					if time.Since(start) < time.Second {
						refused.Add(1) // closed at accept
						backoff = time.Second
					} else {
						cut.Add(1)
					}
					break loop
				case <-t.C:
					if trickling {
						c.Write(header[i%len(header) : i%len(header)+1])
					}
				}
			}
			t.Stop()
			c.Close()
			<-closed
			open.Add(-1)
			if ctx.Err() == nil {
				sleep(ctx, backoff)
			}
		}
	}
	for i := range *trickle + *idle {
		wg.Add(1)
		go hold(i < *trickle)
		if i%100 == 99 {
			time.Sleep(10 * time.Millisecond) // do not overflow the accept queue
		}
	}

	var peakRSS, lastRSS atomic.Int64
	go func() {
		for ctx.Err() == nil {
			if kb := rssKB(*pid); kb > 0 {
				lastRSS.Store(kb)
				if kb > peakRSS.Load() {
					peakRSS.Store(kb)
				}
			}
			sleep(ctx, 200*time.Millisecond)
		}
	}()

	// The normal client, after a few seconds of pressure.
	sleep(ctx, 3*time.Second)
	tr := &http.Transport{
		DialContext:         (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(*normalFrom)}, Timeout: 5 * time.Second}).DialContext,
		MaxIdleConnsPerHost: 16,
	}
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	var mu sync.Mutex
	var lat []time.Duration
	var failed atomic.Int64
	tick := time.NewTicker(time.Second / time.Duration(*rate))
	var nwg sync.WaitGroup
	for ctx.Err() == nil {
		select {
		case <-ctx.Done():
		case <-tick.C:
			nwg.Add(1)
			go func() {
				defer nwg.Done()
				start := time.Now()
				resp, err := client.Get("http://" + *addr + "/")
				if err != nil {
					failed.Add(1)
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					failed.Add(1)
					return
				}
				mu.Lock()
				lat = append(lat, time.Since(start))
				mu.Unlock()
			}()
		}
	}
	tick.Stop()
	nwg.Wait()
	wg.Wait()
	slices.Sort(lat)
	pct := func(p float64) time.Duration {
		if len(lat) == 0 {
			return 0
		}
		return lat[min(len(lat)-1, int(float64(len(lat))*p))].Round(10 * time.Microsecond)
	}
	fmt.Printf("hostile: %d trickling + %d idle from %s; connections opened %d (of them closed at once %d, cut later %d), dials failed %d\n",
		*trickle, *idle, *from, opened.Load(), refused.Load(), cut.Load(), dialFailed.Load())
	fmt.Printf("normal:  %d ok, %d failed; p50 %v p99 %v max %v\n", len(lat), failed.Load(), pct(0.50), pct(0.99), pct(1))
	fmt.Printf("server:  RSS peak %.1f MiB, last %.1f MiB\n", float64(peakRSS.Load())/1024, float64(lastRSS.Load())/1024)
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// rssKB reads VmRSS of pid, 0 if unknown.
func rssKB(pid int) int64 {
	if pid <= 0 {
		return 0
	}
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return n
		}
	}
	return 0
}
